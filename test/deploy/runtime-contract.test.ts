import { execFile, spawn, spawnSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import { promisify } from 'node:util'
import t from 'tap'
import { testModelsDir } from '../helpers/models.js'
import { dockerfileStages, stageEnv } from './dockerfile.js'
import { findExecutable, repo, SAMPLE_JPEG, freePort } from './helpers.js'

// The image's runtime contract, exercised without a Docker engine: the built service runs
// with the runtime stage's ENV as uid 1000, in a mount namespace whose root filesystem is
// read-only and whose /tmp is a fresh tmpfs (as docker run --read-only --tmpfs /tmp and the
// Kubernetes securityContext arrange). It must get ready, score, pass the Dockerfile's own
// HEALTHCHECK command, and exit 0 on SIGTERM after draining.

const runFile = promisify(execFile)
const UID = 1000

function unavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root to create a mount namespace'
  for (const tool of ['unshare', 'setpriv']) if (!findExecutable(tool)) return `${tool} (util-linux) is not on PATH`
  if (!existsSync(repo('dist/main.cjs'))) return 'dist/main.cjs is missing (npm run build)'
  if (repo().startsWith('/tmp/') && !existsSync('/mnt')) return 'the checkout is under /tmp and there is no /mnt to carry it past the tmpfs'
  if (/'/.test(repo())) return 'the checkout path contains a quote'
  const probe = spawnSync('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', 'mount --bind / / && mount -o remount,bind,ro / && mount -t tmpfs tmpfs /tmp'], { encoding: 'utf8' })
  if (probe.status !== 0) return `mount namespaces are not permitted here (${probe.stderr.trim()})`
  return undefined
}


const why = unavailable()

t.test('the service runs as uid 1000 on a read-only root with only /tmp writable', { skip: why ?? false }, async (t) => {
  const runtime = dockerfileStages().find((s) => s.name === 'runtime')
  if (!runtime) return t.fail('no runtime stage')
  const port = await freePort()
  const env: Record<string, string> = {
    PATH: process.env['PATH'] ?? '/usr/local/bin:/usr/bin:/bin',
    ...stageEnv(runtime),
    // Only what must differ on a shared test machine:
    HOST: '127.0.0.1',
    PORT: String(port),
    MODELS_DIR: await testModelsDir(),
    LOG_LEVEL: 'warn',
  }
  // A checkout under /tmp would vanish under the fresh tmpfs: carry it across through
  // /mnt (a directory of the read-only root) and put it back, read-only, where it was.
  const checkout = repo()
  const underTmp = checkout === '/tmp' || checkout.startsWith('/tmp/')
  // The image's CMD, as written (exec form).
  const cmd = JSON.parse(runtime.instructions.filter((i) => i.keyword === 'CMD').at(-1)?.args ?? '[]') as string[]
  // The allocator settings go to the service only: in a container the runtime switches to
  // uid 1000 before the CMD starts, while here setpriv does it, and setresuid() in a process
  // running jemalloc's background thread aborts (glibc's setxid broadcast).
  const allocator = Object.entries(env).filter(([k]) => k === 'LD_PRELOAD' || k === 'MALLOC_CONF').map(([k, v]) => `${k}=${v}`)
  const script = [
    'mount --bind / /',
    'mount -o remount,bind,ro /',
    ...(underTmp ? [`mount --bind '${checkout}' /mnt`] : []),
    'mount -t tmpfs -o size=64m,mode=1777 tmpfs /tmp',
    ...(underTmp ? [`mkdir -p '${checkout}'`, `mount --bind /mnt '${checkout}'`, `mount -o remount,bind,ro '${checkout}'`, `cd '${checkout}'`] : []),
    `exec setpriv --reuid ${UID} --regid ${UID} --clear-groups --no-new-privs env ${allocator.join(' ')} ${cmd.join(' ')}`,
  ].join(' && ')
  let log = ''
  // env -i: exactly this environment, whatever the test runner adds to its children's.
  const vars = Object.entries(env).filter(([k]) => k !== 'LD_PRELOAD' && k !== 'MALLOC_CONF').map(([k, v]) => `${k}=${v}`)
  const child = spawn('env', ['-i', ...vars, 'unshare', '--mount', '--propagation', 'private', 'sh', '-c', script], { cwd: repo(), stdio: ['ignore', 'pipe', 'pipe'] })
  child.stdout.on('data', (d: Buffer) => (log += d.toString()))
  child.stderr.on('data', (d: Buffer) => (log += d.toString()))
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL')
  })
  const url = `http://127.0.0.1:${port}`

  let ready = false
  for (let i = 0; i < 120 && child.exitCode === null; i++) {
    ready = await fetch(`${url}/readyz`).then((r) => r.ok, () => false)
    if (ready) break
    await sleep(250)
  }
  t.ok(ready, 'ready: models load and warm up without writing outside /tmp', { log })
  if (!ready) return

  const status = readFileSync('/proc/' + String(child.pid) + '/status', 'utf8')
  t.match(status, new RegExp(`\\nUid:\\s+${UID}\\s+${UID}`), `runs as uid ${UID}`)
  t.match(status, /\nNoNewPrivs:\s+1/, 'with no_new_privs (allowPrivilegeEscalation: false)')
  t.match(status, /\nCapEff:\s+0+\n/, 'with no effective capabilities')
  const preload = env['LD_PRELOAD']
  if (preload) t.ok(readFileSync(`/proc/${String(child.pid)}/maps`, 'utf8').includes(`/${preload}`), `the allocator it preloads (${preload}) is mapped (Debian/Ubuntu package libjemalloc2)`)
  const models = (await (await fetch(`${url}/models`)).json()) as { threads?: { uvThreadpoolSize: { source: string } } }
  t.notMatch(models.threads?.uvThreadpoolSize.source ?? '', /already started/, 'the entry sized libuv\'s pool before it started')

  const score = await fetch(`${url}/score`, { method: 'POST', body: readFileSync(SAMPLE_JPEG), headers: { 'content-type': 'image/jpeg' } })
  t.equal(score.status, 200, 'scores an image')
  await score.arrayBuffer()

  // The Dockerfile's HEALTHCHECK, run as written (exec form) with the container's PORT.
  const healthcheck = runtime.instructions.find((i) => i.keyword === 'HEALTHCHECK')?.args ?? ''
  const argv = JSON.parse(healthcheck.slice(healthcheck.indexOf('CMD ') + 4)) as string[]
  const [command, ...rest] = argv
  t.equal(command, 'node', 'HEALTHCHECK uses node (no curl in the slim image)')
  await t.resolves(runFile('env', ['-i', ...vars, ...allocator, command as string, ...rest]), 'HEALTHCHECK command exits 0 against the running service')

  child.kill('SIGTERM')
  const code = await Promise.race([exit, sleep(15_000).then(() => 'timeout' as const)])
  t.equal(code, 0, 'SIGTERM: drains and exits 0', { log })
  t.notMatch(log, /EROFS|EACCES|read-only file system/i, 'no write was refused')
})

if (why) t.comment(`skipped: ${why}`)
