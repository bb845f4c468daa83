import { spawn } from 'node:child_process'
import { existsSync, readdirSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { testModelsDir } from '../helpers/models.js'
import { projectRoot } from '../helpers/paths.js'
import { startTestService } from '../helpers/service.js'

// A CPU quota emulated with a fixture cgroup folder (CGROUP_ROOT): the real service must
// size its decode slots and ONNX Runtime threads from it and say so in GET /models.

const fixture = (name: string) => join(projectRoot, 'test', 'threads', 'fixtures', name)

async function threadsOf(url: string): Promise<any> {
  const res = await fetch(`${url}/models`)
  if (res.status !== 200) throw new Error(`GET /models answered ${res.status}`)
  return ((await res.json()) as { threads: unknown }).threads
}

t.test('a 2-CPU quota (cgroup v2 cpu.max) gives 2 decode slots, and 1 ONNX Runtime thread to each of the 2 models', async (t) => {
  const svc = await startTestService({ CGROUP_ROOT: fixture('v2-two-cpus') })
  t.teardown(() => svc.server.shutdown())
  const expected = Math.min(2, availableParallelism())
  t.match(await threadsOf(svc.url), {
    cpu: { cores: expected, quotaCores: 2, availableParallelism: availableParallelism() },
    decodeSlots: { value: expected, source: 'cpu budget' },
    ortIntraOpThreads: { value: 1, source: 'cpu budget / 2 models' },
  })
  t.equal(svc.server.state.scorer?.decodes.limit, expected, 'the scorer runs with those slots')
  const onMain = await startTestService({ CGROUP_ROOT: fixture('v2-two-cpus'), INFERENCE_THREAD: 'main' })
  t.teardown(() => onMain.server.shutdown())
  t.match((await threadsOf(onMain.url)).ortIntraOpThreads, { value: expected, source: 'cpu budget' }, 'sessions on the main thread run one at a time: each gets the whole budget')
})

t.test('half a CPU (cgroup v2 "50000 100000") gives one of each; CPU_LIMIT overrides the cgroup', async (t) => {
  const half = await startTestService({ CGROUP_ROOT: fixture('v2-half-cpu') })
  t.teardown(() => half.server.shutdown())
  t.match(await threadsOf(half.url), {
    cpu: { cores: 1, source: `cgroup v2 ${join(fixture('v2-half-cpu'), 'cpu.max')}`, quotaCores: 0.5 },
    decodeSlots: { value: 1, source: 'cpu budget' },
    ortIntraOpThreads: { value: 1, source: 'cpu budget / 2 models' },
    uvThreadpoolSize: { source: /^already started/ },
  })
  t.equal(half.server.state.scorer?.decodes.limit, 1)
  const limited = await startTestService({ CGROUP_ROOT: fixture('v2-half-cpu'), CPU_LIMIT: 2, ORT_INTRA_OP_THREADS: 3 })
  t.teardown(() => limited.server.shutdown())
  t.match(await threadsOf(limited.url), {
    cpu: { cores: Math.min(2, availableParallelism()), quotaCores: 2 },
    ortIntraOpThreads: { value: 3, source: 'ORT_INTRA_OP_THREADS' },
  })
})

/** Starts a built entry, waits for /readyz, returns its GET /models threads and its thread count. */
async function startEntry(entry: string, env: Record<string, string>) {
  const port = 20000 + Math.floor(Math.random() * 20000)
  const vars = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOST: '127.0.0.1', PORT: String(port), MODELS_DIR: await testModelsDir(), LOG_LEVEL: 'warn', ...env }
  // env -i: tap adds a module loader (NODE_OPTIONS) to the children it sees, and any ES
  // module loaded before the entry would start libuv's pool; env execs node, same pid.
  const child = spawn('env', ['-i', ...Object.entries(vars).map(([k, v]) => `${k}=${v}`), process.execPath, entry], { cwd: projectRoot, stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
  const url = `http://127.0.0.1:${port}`
  try {
    for (let i = 0; i < 240; i++) {
      if (child.exitCode !== null) throw new Error(`${entry} exited ${child.exitCode}: ${stderr}`)
      if (await fetch(`${url}/readyz`).then((r) => r.ok, () => false)) break
      await sleep(250)
    }
    await sleep(300)
    const osThreads = readdirSync(`/proc/${child.pid}/task`).length
    return { threads: await (await fetch(`${url}/models`)).json().then((b: any) => b.threads), osThreads }
  } finally {
    child.kill('SIGKILL')
  }
}

const built = existsSync(join(projectRoot, 'dist', 'main.cjs')) && existsSync(join(projectRoot, 'dist', 'main.js'))
t.test('dist/main.cjs sizes libuv\'s pool before it starts; an ES module entry cannot', { skip: built ? false : 'dist/main.cjs is missing (npm run build)' }, async (t) => {
  // Ten decode slots want a pool of twelve: eight threads more than libuv's default four.
  const env = { CGROUP_ROOT: fixture('v2-two-cpus'), DECODE_CONCURRENCY: '10' }
  const cjs = await startEntry('dist/main.cjs', env)
  const esm = await startEntry('dist/main.js', env)
  t.same(cjs.threads.uvThreadpoolSize, { value: 12, source: 'decode slots + 2' })
  t.match(esm.threads.uvThreadpoolSize, { value: 4, source: /^already started/ })
  t.equal(cjs.osThreads - esm.osThreads, 8, `the process really has 8 more threads (${cjs.osThreads} vs ${esm.osThreads})`)
  t.match(cjs.threads, { cpu: { quotaCores: 2 }, decodeSlots: { value: 10, source: 'DECODE_CONCURRENCY' } })
})

t.test('a quota file that does not parse stops the start: exit 2, the file and its content named', { skip: built ? false : 'dist/main.cjs is missing (npm run build)' }, async (t) => {
  const child = spawn('env', ['-i', `PATH=${process.env['PATH'] ?? '/usr/bin:/bin'}`, `CGROUP_ROOT=${fixture('v2-malformed')}`, process.execPath, 'dist/main.cjs'], { cwd: projectRoot, stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve))
  t.equal(code, 2)
  t.match(stderr, `nima-serve: reading the CPU quota in ${fixture('v2-malformed')}: cpu.max: expected "<quota|max> <period>", got "two cpus please\\n"`)
})
