/**
 * The service as a separate child process (what production runs), with start-up timing
 * (spawn → first GET /readyz 200), memory (VmRSS samples and VmHWM from /proc) and CPU
 * time (utime + stime from /proc/<pid>/stat).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process'
import { closeSync, cpSync, mkdirSync, openSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'

export const projectRoot = fileURLToPath(new URL('../../', import.meta.url))
const leversModule = fileURLToPath(new URL('./levers.ts', import.meta.url))

export interface ServiceOptions {
  /** 'tsx': node --import tsx src/main.ts (always current source); a path: a built main.js. */
  entry: 'tsx' | string
  modelsDir: string
  /** Extra environment for the service (ORT_*, BATCH_*, UV_THREADPOOL_SIZE, BENCH_* levers…). */
  env?: Record<string, string>
  /** Where the service's stdout/stderr go (pino JSON lines). */
  logFile: string
  readyTimeoutMs?: number
  /** Extra node flags, e.g. ['--cpu-prof', '--cpu-prof-dir', dir]. */
  nodeArgs?: string[]
  /** CPUs the service is pinned to (`taskset -c` list, e.g. "0" or "0,1"); absent: all. */
  cpus?: string
}

export interface MemorySample {
  rssMb: number
  hwmMb: number
}

export interface RunningService {
  pid: number
  port: number
  baseUrl: string
  /** spawn → the listen log line. */
  listeningMs: number
  /** spawn → first GET /readyz answered 200. */
  readyMs: number
  /** Highest VmRSS sampled since the last resetPeak(), and the process's VmHWM now. */
  peakMemory(): MemorySample
  resetPeak(): void
  /** CPU seconds (user + system) the process has used so far. */
  cpuSeconds(): number
  stop(): Promise<number | null>
}

const CLK_TCK = 100

function readStatus(pid: number): MemorySample | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8')
    const kb = (key: string) => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? Number.NaN)
    return { rssMb: kb('VmRSS') / 1024, hwmMb: kb('VmHWM') / 1024 }
  } catch {
    return undefined
  }
}

function readCpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) / CLK_TCK
  } catch {
    return Number.NaN
  }
}

async function findPort(logFile: string, child: ChildProcess, deadline: number): Promise<number> {
  while (performance.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`service exited with code ${child.exitCode} before listening; see ${logFile}`)
    const text = readFileSync(logFile, 'utf8')
    const m = /Server listening at http:\/\/[^"]*:(\d+)"/.exec(text)
    if (m) return Number(m[1])
    await sleep(5)
  }
  throw new Error(`service did not log its listening address in time; see ${logFile}`)
}

/**
 * What every benchmarked service runs with unless its env says otherwise: the score cache
 * off. Benchmarks send the same photos again and again to measure decode and inference;
 * with the cache on they would measure cache hits (bench/cache.ts measures those).
 */
export const BENCH_SERVICE_DEFAULTS: Readonly<Record<string, string>> = { SCORE_CACHE: 'off' }

/** One line for a benchmark's output: the score cache setting it ran with. */
export function scoreCacheNote(env: Record<string, string> = {}): string {
  const setting = env['SCORE_CACHE'] ?? BENCH_SERVICE_DEFAULTS['SCORE_CACHE']
  return setting === 'off' ? 'score cache: off (SCORE_CACHE=off: every request decodes and infers)' : `score cache: ${setting}`
}

export async function startService(o: ServiceOptions): Promise<RunningService> {
  const levers = Object.keys(o.env ?? {}).some((k) => k.startsWith('BENCH_'))
  const args = [
    ...(o.nodeArgs ?? []),
    ...(o.entry === 'tsx' ? ['--import', 'tsx', ...(levers ? ['--import', leversModule] : []), 'src/main.ts'] : [...(levers ? ['--import', 'tsx', '--import', leversModule] : []), o.entry]),
  ]
  mkdirSync(dirname(o.logFile), { recursive: true })
  // MALLOC_ARENA_MAX=2 as `npm start` and the Dockerfile set it, unless the caller says otherwise;
  // an empty value in o.env removes the variable.
  const env: NodeJS.ProcessEnv = { MALLOC_ARENA_MAX: '2', ...process.env, ...BENCH_SERVICE_DEFAULTS, HOST: '127.0.0.1', PORT: '0', MODELS_DIR: o.modelsDir, LOG_LEVEL: 'info', ...o.env }
  for (const [k, v] of Object.entries(env)) if (v === '') delete env[k]
  const out = openSync(o.logFile, 'w')
  const started = performance.now()
  // Pinned with taskset, the service sees the pinned CPUs as its available parallelism,
  // as it would see a pod's cpuset, and plans its threads for them.
  const [command, argv] = o.cpus ? ['taskset', ['-c', o.cpus, process.execPath, ...args]] : [process.execPath, args]
  const child = spawn(command, argv, {
    cwd: projectRoot,
    env,
    stdio: ['ignore', out, out],
  })
  closeSync(out)
  const pid = child.pid!
  const deadline = started + (o.readyTimeoutMs ?? 60_000)
  let peakRss = 0
  const sampler = setInterval(() => {
    const s = readStatus(pid)
    if (s && s.rssMb > peakRss) peakRss = s.rssMb
  }, 100)
  const kill = async () => {
    clearInterval(sampler)
    if (child.exitCode !== null || child.signalCode !== null) return child.exitCode
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)))
    child.kill('SIGTERM')
    const code = await Promise.race([exited, sleep(15_000).then(() => 'timeout' as const)])
    if (code === 'timeout') {
      child.kill('SIGKILL')
      return exited
    }
    return code
  }
  try {
    const port = await findPort(o.logFile, child, deadline)
    const listeningMs = performance.now() - started
    const baseUrl = `http://127.0.0.1:${port}`
    let readyMs = Number.NaN
    while (performance.now() < deadline) {
      if (child.exitCode !== null) throw new Error(`service exited with code ${child.exitCode} while loading; see ${o.logFile}`)
      try {
        const r = await fetch(`${baseUrl}/readyz`)
        await r.arrayBuffer()
        if (r.status === 200) {
          readyMs = performance.now() - started
          break
        }
      } catch {
        // not accepting yet
      }
      await sleep(5)
    }
    if (!Number.isFinite(readyMs)) throw new Error(`service not ready within ${o.readyTimeoutMs ?? 60_000} ms; see ${o.logFile}`)
    return {
      pid,
      port,
      baseUrl,
      listeningMs,
      readyMs,
      peakMemory: () => {
        const s = readStatus(pid)
        if (s && s.rssMb > peakRss) peakRss = s.rssMb
        return { rssMb: peakRss, hwmMb: s?.hwmMb ?? Number.NaN }
      },
      resetPeak: () => {
        peakRss = readStatus(pid)?.rssMb ?? 0
      },
      cpuSeconds: () => readCpuSeconds(pid),
      stop: kill,
    }
  } catch (err) {
    await kill()
    throw err
  }
}

/**
 * Compiles src/ with tsc into bench/results/build (never touching the shared dist/), so
 * the service can be measured as production runs it. Returns the main.js path, or
 * undefined (with a note) when src does not compile right now.
 */
export function buildDist(note: (msg: string) => void): string | undefined {
  const outDir = join(projectRoot, 'bench', 'results', 'build')
  try {
    execFileSync(process.execPath, [join(projectRoot, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json', '--outDir', outDir], { cwd: projectRoot, stdio: 'pipe' })
    // The pages' static files, as `npm run build` copies them (src/http/static-page.ts).
    for (const folder of ['labels/page', 'gallery/page', 'http/page-kit']) cpSync(join(projectRoot, 'src', folder), join(outDir, folder), { recursive: true })
    return join(outDir, 'main.js')
  } catch (err) {
    note(`(could not compile src for the dist server: ${String((err as { stdout?: Buffer }).stdout ?? err).slice(0, 300)})`)
    return undefined
  }
}
