/**
 * SIGHUP reloads the models of the real process (`node dist/main.cjs`, as the images run
 * it), and the memory of the replaced models comes back: after three reloads, each with a
 * new version and traffic on it, the RSS of the service and its decode processes is back
 * within RSS_TOLERANCE_MB of what it was before the first.
 */
import { spawn } from 'node:child_process'
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { arch, tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { testModelsDir } from '../helpers/models.js'
import { samplePhotos } from '../helpers/paths.js'
import { freePort, repo } from './helpers.js'

const RSS_TOLERANCE_MB = 120
const RELOADS = 3

function processTree(root: number): number[] {
  const children = new Map<number, number[]>()
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8')
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
      children.set(ppid, [...(children.get(ppid) ?? []), Number(name)])
    } catch {
      // gone meanwhile
    }
  }
  const out = [root]
  for (let i = 0; i < out.length; i++) out.push(...(children.get(out[i]!) ?? []))
  return out
}

const rssMb = (pid: number): number => {
  try {
    return Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024
  } catch {
    return 0
  }
}

const why = existsSync(repo('dist/main.cjs')) ? undefined : 'dist/main.cjs is missing (npm run build)'

t.test('SIGHUP swaps in new versions and the replaced models give their memory back', { skip: why ?? false }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'nima-sighup-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const models = join(dir, 'models')
  cpSync(await testModelsDir(), models, { recursive: true, dereference: true })
  const [baseVersion] = readdirSync(join(models, 'aesthetic')) as [string]
  const install = (version: string) => {
    const to = join(models, 'aesthetic', version)
    cpSync(join(models, 'aesthetic', baseVersion), to, { recursive: true })
    const manifest = JSON.parse(readFileSync(join(to, 'manifest.json'), 'utf8'))
    manifest.version = version
    manifest.provenance.createdAt = new Date(Date.now() + 1000).toISOString()
    writeFileSync(join(to, 'manifest.json'), JSON.stringify(manifest, null, 2))
  }

  // The allocator npm start and the images use: jemalloc when installed, else glibc with 2 arenas.
  const jemalloc = `/usr/lib/${arch() === 'arm64' ? 'aarch64' : 'x86_64'}-linux-gnu/libjemalloc.so.2`
  const allocator = existsSync(jemalloc) ? { LD_PRELOAD: jemalloc, MALLOC_CONF: 'background_thread:true' } : { MALLOC_ARENA_MAX: '2' }
  const port = await freePort()
  const child = spawn(process.execPath, [repo('dist/main.cjs')], {
    cwd: repo(),
    env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOST: '127.0.0.1', PORT: String(port), MODELS_DIR: models, LOG_LEVEL: 'warn', CPU_LIMIT: '2', ...allocator },
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  let log = ''
  child.stderr.on('data', (d: Buffer) => (log += d.toString()))
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL')
  })
  const url = `http://127.0.0.1:${port}`
  for (let i = 0; i < 240 && !(await fetch(`${url}/readyz`).then((r) => r.ok, () => false)); i++) await sleep(250)

  const photos = samplePhotos().slice(0, 8).map((p) => readFileSync(p))
  const traffic = async () => {
    const versions = await Promise.all(
      photos.map(async (body) => {
        const r = await fetch(`${url}/score`, { method: 'POST', body, headers: { 'content-type': 'application/octet-stream' } })
        return r.status === 200 ? ((await r.json()) as { models: { aesthetic: { version: string } } }).models.aesthetic.version : `status ${r.status}`
      }),
    )
    return [...new Set(versions)]
  }
  const treeRss = () => processTree(child.pid!).reduce((a, p) => a + rssMb(p), 0)
  const settle = async () => {
    await sleep(1500)
    return treeRss()
  }

  await traffic()
  await traffic()
  const before = await settle()
  const processesBefore = processTree(child.pid!).length
  for (let i = 1; i <= RELOADS; i++) {
    const version = `${baseVersion}-r${i}`
    install(version)
    child.kill('SIGHUP')
    let serving = ''
    for (let k = 0; k < 100 && serving !== version; k++) {
      await sleep(100)
      const m = (await (await fetch(`${url}/models`)).json()) as { models: { id: string; version: string }[] }
      serving = m.models.find((x) => x.id === 'aesthetic')?.version ?? ''
    }
    t.equal(serving, version, `SIGHUP ${i}: /models reports ${version}`)
    t.same(await traffic(), [version], `SIGHUP ${i}: every response comes from ${version}`)
  }
  const after = await settle()
  t.equal(processTree(child.pid!).length, processesBefore, 'as many processes as before: the old decode processes are gone')
  t.ok(after - before < RSS_TOLERANCE_MB, `RSS ${before.toFixed(0)} MiB before, ${after.toFixed(0)} MiB after ${RELOADS} reloads (tolerance +${RSS_TOLERANCE_MB} MiB)`, { log })
  t.equal(await fetch(`${url}/readyz`).then((r) => r.status), 200, 'still ready')
  t.comment(`RSS before ${before.toFixed(0)} MiB, after ${RELOADS} reloads ${after.toFixed(0)} MiB (${existsSync(jemalloc) ? 'jemalloc' : 'glibc, 2 arenas'})`)
})

if (why) t.comment(`skipped: ${why}`)
