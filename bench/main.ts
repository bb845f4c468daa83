/**
 * npm run bench [-- --quick] — issue #5.
 *
 *  1. The raw in-process pipeline (src/imaging decode + tensor, both ORT sessions, no
 *     HTTP): each stage alone, then end to end at several batch sizes. Its best rate is
 *     the limit.
 *  2. The real service over HTTP on 127.0.0.1, as a child process, loaded by autocannon
 *     in another process at concurrency 1…32: images/s, p50/p95/p99, peak RSS, CPU,
 *     and service/limit. Plus start-up to ready, the single-request latency breakdown
 *     and the execution-provider fallback check.
 *
 * Prints Markdown tables and writes the same figures to bench/results/bench-<time>.json.
 * Options: --quick (about a minute), --images DIR, --models-dir DIR, --out FILE,
 * --env KEY=VALUE (repeatable; service and in-process sessions), --concurrency 1,2,4,
 * --duration SEC (per load level), --skip-raw, --skip-service, --no-dist, --cpus LIST (pins the
 * in-process pipeline and the service to these CPUs with taskset, e.g. 0 or 0,1; the load
 * generator stays unpinned: per-core scaling).
 */
import { execFileSync } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { loadConfig } from '../src/config/load.js'
import { planThreads } from '../src/threads/plan-threads.js'
import { applyGcSettings } from '../src/gc-settings.js'
import { testModelsDir } from '../test/helpers/models.js'
import { describeImages, loadSampleJpegs } from './lib/images.js'
import { applyLevers, leversFromEnv } from './lib/levers.js'
import { runLoadSampled, type LoadResult } from './lib/load.js'
import { gcTotals, providerReport, singleRequestBreakdown, waitIdle, type ProviderReport, type SingleRequestBreakdown } from './lib/probes.js'
import {
  loadModels,
  measureDecode,
  measureDecodePreprocess,
  measureMicroCosts,
  measureModel,
  measurePipeline,
  preprocessAll,
  type DecodeStageResult,
  type MicroCosts,
  type ModelStageResult,
  type PipelineOptions,
  type PipelineResult,
} from './lib/raw.js'
import { machineInfo, mdTable, print, section, timestamp, uptime, writeJson } from './lib/report.js'
import { buildDist, projectRoot, scoreCacheNote, startService, type RunningService } from './lib/server.js'
import { markNoise, noiseBetween, noiseSince, selfCpuSeconds, waitQuiet, type Noise } from './lib/noise.js'
import { sessionThreadsFromLog, summarizeCpuProfile, threadCpu, threadCpuByKind, threadShare, type ThreadShare } from './lib/profile.js'
import { round, serialBound } from './lib/stats.js'

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    images: { type: 'string', default: resolve(projectRoot, '../shared/images') },
    'models-dir': { type: 'string' },
    out: { type: 'string' },
    'wait-quiet': { type: 'string' },
    env: { type: 'string', multiple: true, default: [] },
    concurrency: { type: 'string' },
    duration: { type: 'string' },
    'skip-raw': { type: 'boolean', default: false },
    'skip-service': { type: 'boolean', default: false },
    'no-dist': { type: 'boolean', default: false },
    profile: { type: 'boolean', default: false },
    server: { type: 'string' },
    cpus: { type: 'string' },
  },
})

const quick = args.quick
const plan = {
  stageMs: quick ? 1000 : 3000,
  decodeConcurrency: quick ? [2, 4] : [1, 2, 4, 8],
  batches: [1, 2, 4, 8, 16, 32],
  /** 'configured': the sessions as the service opens them; 'spinning flipped': the same with ORT_ALLOW_SPINNING inverted. */
  pipelines: (quick
    ? [
        { sessions: 'configured', batch: 4, decodeConcurrency: 2, mode: 'serial' },
        { sessions: 'configured', batch: 4, decodeConcurrency: 2, mode: 'concurrent' },
        { sessions: 'configured', batch: 8, decodeConcurrency: 2, mode: 'concurrent' },
        { sessions: 'spinning flipped', batch: 4, decodeConcurrency: 2, mode: 'concurrent' },
      ]
    : [
        { sessions: 'configured', batch: 4, decodeConcurrency: 2, mode: 'serial' },
        { sessions: 'configured', batch: 4, decodeConcurrency: 4, mode: 'serial' },
        { sessions: 'configured', batch: 8, decodeConcurrency: 2, mode: 'serial' },
        { sessions: 'configured', batch: 8, decodeConcurrency: 2, mode: 'concurrent' },
        { sessions: 'configured', batch: 8, decodeConcurrency: 4, mode: 'serial' },
        { sessions: 'configured', batch: 16, decodeConcurrency: 4, mode: 'serial' },
        { sessions: 'configured', batch: 32, decodeConcurrency: 4, mode: 'serial' },
        { sessions: 'spinning flipped', batch: 4, decodeConcurrency: 2, mode: 'serial' },
        { sessions: 'spinning flipped', batch: 8, decodeConcurrency: 2, mode: 'serial' },
        { sessions: 'spinning flipped', batch: 8, decodeConcurrency: 4, mode: 'serial' },
      ]) as (Omit<PipelineOptions, 'warmupMs' | 'ms'> & { sessions: 'configured' | 'spinning flipped' })[],
  pipelineWarmupMs: quick ? 500 : 1500,
  pipelineMs: quick ? 2000 : 6000,
  concurrency: args.concurrency ? args.concurrency.split(',').map(Number) : [1, 2, 4, 8, 16, 32],
  loadWarmupSec: quick ? 1 : 3,
  loadSec: args.duration ? Number(args.duration) : quick ? 3 : 20,
  singleRounds: quick ? 2 : 6,
  startups: quick ? 0 : 3,
  /** What the load server runs: the compiled src (as production) or src through tsx. */
  server: (args.server ?? (quick ? 'tsx' : 'dist')) as 'tsx' | 'dist',
}

const serviceEnv: Record<string, string> = {}
for (const kv of args.env) {
  const i = kv.indexOf('=')
  if (i <= 0) throw new Error(`--env expects KEY=VALUE, got ${JSON.stringify(kv)}`)
  serviceEnv[kv.slice(0, i)] = kv.slice(i + 1)
}
const config = loadConfig({ ...process.env, ...serviceEnv })
// The in-process limit runs under the service's garbage-collector settings.
applyGcSettings(config)
// BENCH_* levers given with --env apply to the in-process sessions too (the service child gets them by preload).
applyLevers(leversFromEnv({ ...process.env, ...serviceEnv }))
const modelsDir = resolve(args['models-dir'] ?? (await testModelsDir()))
const images = loadSampleJpegs(args.images)
const stamp = timestamp()
const outFile = resolve(args.out ?? join(projectRoot, 'bench', 'results', `bench-${stamp}${quick ? '-quick' : ''}.json`))

interface RawResults {
  sessionOptions: { intraOpThreads: number; interOpThreads: number; providers: readonly string[] }
  micro: MicroCosts
  decode: (DecodeStageResult & { noise: Noise })[]
  decodePreprocess: DecodeStageResult & { noise: Noise }
  models: (ModelStageResult & { noise: Noise })[]
  bestBatch: Record<string, { batch: number; imagesPerSec: number }>
  /** 1 / (1/prep + 1/modelA + 1/modelB): every stage uses the whole machine in turn. */
  stageBound: number
  pipelines: (PipelineResult & { noise: Noise; sessions: string })[]
  limit: PipelineResult & { noise: Noise; sessions: string }
}

interface LevelResult extends LoadResult {
  noise: Noise
  /** Server CPU per scored image, ms: robust to other tenants, unlike images/s. */
  cpuMsPerImage: number
  /** Server CPU split: the event-loop thread against all the others. */
  threads: ThreadShare
  /** Server CPU per image by thread kind (main, ORT session threads, libuv pool, V8 helpers), ms. */
  cpuMsPerImageByThread: Record<string, number>
  /** The main isolate's collections (the service's /metrics): full ones per 1,000 images, and pause ms per image. */
  gc: { majorPer1000: number; pauseMsPerImage: number }
  /** How long the server kept working after the load generator left (abandoned requests). */
  drainMs: number
  serverCores: number
  peakRssMb: number
  hwmMb: number
  ratioToLimit: number
}

/** Runs an in-process measurement and attaches how much CPU other processes took meanwhile. */
async function noted<T extends object>(fn: () => Promise<T>): Promise<T & { noise: Noise }> {
  const mark = markNoise(selfCpuSeconds())
  const r = await fn()
  return { ...r, noise: noiseSince(mark, selfCpuSeconds()) }
}

const foreign = (rs: readonly { noise?: Noise }[]) => Math.max(...rs.map((r) => r.noise?.foreignCores ?? 0))

/** Pins every thread of this process to `cpus` (a taskset list); undefined: all CPUs again. */
function pinSelf(cpus: string | undefined): void {
  execFileSync('taskset', ['-a', '-pc', cpus ?? `0-${allCpus - 1}`, String(process.pid)], { stdio: 'ignore' })
}
const allCpus = cpus().length

async function rawPhase(): Promise<RawResults> {
  section('1. Raw in-process pipeline (no HTTP)')
  if (args.cpus) pinSelf(args.cpus)
  try {
    return await rawPhasePinned()
  } finally {
    if (args.cpus) pinSelf(undefined)
  }
}

async function rawPhasePinned(): Promise<RawResults> {
  // Planned after pinning: a pinned process sees only its CPUs, as the service will.
  const threadPlan = planThreads(config, 'started')
  // The sessions as the service opens them: the same thread plan and the same thread.
  const sessionOptions = {
    providers: config.executionProviders,
    intraOpThreads: threadPlan.ortIntraOpThreads.value,
    interOpThreads: config.ORT_INTER_OP_THREADS,
    allowSpinning: config.ORT_ALLOW_SPINNING,
    thread: config.INFERENCE_THREAD,
  }
  print(
    `models: ${modelsDir} (${config.models.slice(0, 2).join(', ')}); sessions on ${sessionOptions.thread === 'worker' ? 'worker threads' : 'the main thread'}, ORT intra=${sessionOptions.intraOpThreads} (${threadPlan.ortIntraOpThreads.source}) inter=${sessionOptions.interOpThreads} spinning=${sessionOptions.allowSpinning ? 'on' : 'off'}; UV_THREADPOOL_SIZE=${process.env.UV_THREADPOOL_SIZE ?? '4 (default)'}`,
  )
  const models = await loadModels(modelsDir, config.models.slice(0, 2), sessionOptions)
  try {
    const spec = models[0]!.spec
    const micro = await measureMicroCosts(images, spec, quick ? 800 : 2000)
    print(`\nper-photo costs on the main thread: writeTensor ${micro.writeTensorMs} ms, sha256 ${micro.sha256Ms} ms, batch copy ${micro.batchCopyMs} ms, Float32Array alloc ${micro.allocMs} ms`)
    print(`phash + phashCrops ${micro.phashMs} ms per photo = ${round((100 * micro.phashMs) / micro.decodeMs, 2)} % of a decode alone (${micro.decodeMs} ms, one at a time)`)

    const decode: RawResults['decode'] = []
    for (const c of plan.decodeConcurrency) decode.push(await noted(() => measureDecode(images, c, plan.stageMs)))
    const bestDecode = decode.reduce((a, b) => (b.photosPerSec > a.photosPerSec ? b : a))
    const decodePreprocess = await noted(() => measureDecodePreprocess(images, spec, bestDecode.concurrency, plan.stageMs))
    print(`\nDecode (sharp, full resolution, sha256) and decode + preprocess (writeTensor + phash + phashCrops), photos/s (other processes took up to ${foreign([...decode, decodePreprocess])} cores meanwhile):\n`)
    print(
      mdTable(
        ['stage', ...decode.map((d) => `conc ${d.concurrency}`)],
        [
          ['decode', ...decode.map((d) => d.photosPerSec)],
          ['decode + preprocess', ...decode.map((d) => (d.concurrency === decodePreprocess.concurrency ? decodePreprocess.photosPerSec : ''))],
        ],
      ),
    )

    const tensors = await preprocessAll(images, spec)
    const modelResults: RawResults['models'] = []
    for (const m of models) for (const b of plan.batches) modelResults.push(await noted(() => measureModel(m, tensors, b, plan.stageMs)))
    print(`\nEach model alone, images/s (median ms per session.run; longest event-loop stall during runs, ms); other processes took up to ${foreign(modelResults)} cores:\n`)
    print(
      mdTable(
        ['model', ...plan.batches.map((b) => `batch ${b}`)],
        models.map((m) => [m.id, ...modelResults.filter((r) => r.model === m.id).map((r) => `${r.imagesPerSec} (${r.msPerRun} ms; ${r.eventLoopMaxBlockMs})`)]),
      ),
    )
    const bestBatch: RawResults['bestBatch'] = {}
    for (const m of models) {
      const best = modelResults.filter((r) => r.model === m.id).reduce((a, b) => (b.imagesPerSec > a.imagesPerSec ? b : a))
      bestBatch[m.id] = { batch: best.batch, imagesPerSec: best.imagesPerSec }
    }
    const stageBound = round(serialBound([decodePreprocess.photosPerSec, ...Object.values(bestBatch).map((b) => b.imagesPerSec)]))

    const pipelines: RawResults['pipelines'] = []
    const runPipelines = async (sessions: 'configured' | 'spinning flipped', ms: typeof models) => {
      for (const p of plan.pipelines.filter((x) => x.sessions === sessions)) {
        pipelines.push({ ...(await noted(() => measurePipeline(images, ms, { ...p, warmupMs: plan.pipelineWarmupMs, ms: plan.pipelineMs }))), sessions })
      }
    }
    await runPipelines('configured', models)
    const flipped = await loadModels(modelsDir, config.models.slice(0, 2), { ...sessionOptions, allowSpinning: !sessionOptions.allowSpinning })
    try {
      await runPipelines('spinning flipped', flipped)
    } finally {
      await Promise.all(flipped.map((m) => m.session.dispose()))
    }
    const limit = pipelines.reduce((a, b) => (b.imagesPerSec > a.imagesPerSec ? b : a))
    print('\nEnd to end (decode → tensor written in place into the batch → both models), images/s:\n')
    print(
      mdTable(
        ['ORT sessions', 'batch', 'decodes in flight', 'models', 'images/s', 'CPU ms/image', 'inference busy', 'foreign cores'],
        pipelines.map((p) => [p.sessions === 'configured' ? p.sessions : `spinning ${sessionOptions.allowSpinning ? 'off' : 'on'}`, p.batch, p.decodeConcurrency, p.mode, p.imagesPerSec, p.cpuMsPerImage, `${Math.round(p.inferenceBusy * 100)}%`, p.noise.foreignCores]),
      ),
    )
    print(`\nstage bound 1/(1/${decodePreprocess.photosPerSec} + ${Object.values(bestBatch).map((b) => `1/${b.imagesPerSec}`).join(' + ')}) = ${stageBound} images/s`)
    print(`LIMIT (best end-to-end): ${limit.imagesPerSec} images/s (${limit.sessions === 'configured' ? 'configured' : `spinning ${sessionOptions.allowSpinning ? 'off' : 'on'}`} sessions, batch ${limit.batch}, ${limit.decodeConcurrency} decodes in flight, models ${limit.mode})`)
    return { sessionOptions, micro, decode, decodePreprocess, models: modelResults, bestBatch, stageBound, pipelines, limit }
  } finally {
    await Promise.all(models.map((m) => m.session.dispose()))
  }
}

interface StartupResult {
  entry: string
  runs: { listeningMs: number; readyMs: number }[]
  medianReadyMs: number
}

async function measureStartups(entry: string, n: number): Promise<StartupResult> {
  const runs: StartupResult['runs'] = []
  for (let i = 0; i < n; i++) {
    const s = await startService({ entry, modelsDir, env: serviceEnv, logFile: join(projectRoot, 'bench', 'results', `server-startup.log`) })
    runs.push({ listeningMs: round(s.listeningMs), readyMs: round(s.readyMs) })
    await s.stop()
  }
  const sorted = runs.map((r) => r.readyMs).sort((a, b) => a - b)
  return { entry, runs, medianReadyMs: sorted[Math.floor(sorted.length / 2)]! }
}

async function servicePhase(limit: number | undefined) {
  section('2. The service over HTTP (child process; autocannon in another process)')
  const startups: StartupResult[] = []
  const dist = args['no-dist'] || (plan.server === 'tsx' && plan.startups === 0) ? undefined : buildDist((m) => print(m))
  if (plan.startups > 0) {
    startups.push(await measureStartups('tsx', plan.startups))
    if (dist) startups.push(await measureStartups(dist, plan.startups))
  }
  const logFile = join(projectRoot, 'bench', 'results', 'server.log')
  const entry = plan.server === 'dist' && dist ? dist : 'tsx'
  const svc: RunningService = await startService({ entry, modelsDir, env: serviceEnv, logFile, ...(args.cpus ? { cpus: args.cpus } : {}) })
  startups.unshift({ entry: `${entry === 'tsx' ? 'tsx' : 'dist'} (load server)`, runs: [{ listeningMs: round(svc.listeningMs), readyMs: round(svc.readyMs) }], medianReadyMs: round(svc.readyMs) })
  print(`load server: ${entry === 'tsx' ? 'node --import tsx src/main.ts' : `node ${entry.replace(projectRoot, '')} (src compiled by tsc)`}, pid ${svc.pid}\n`)
  print('Start-up, spawn → listening → GET /readyz 200 (models loaded and warmed), ms:\n')
  print(mdTable(['entry', 'runs (listening / ready)', 'median ready'], startups.map((s) => [s.entry.replace(projectRoot, ''), s.runs.map((r) => `${r.listeningMs} / ${r.readyMs}`).join(', '), s.medianReadyMs])))
  const idle = svc.peakMemory()
  print(`\nserver RSS when ready: ${round(idle.rssMb)} MB (VmHWM ${round(idle.hwmMb)} MB)`)

  let single: SingleRequestBreakdown
  const levels: LevelResult[] = []
  try {
    single = await singleRequestBreakdown(svc.baseUrl, images, plan.singleRounds)
    print(`\nSingle request, sequential (${single.requests} requests), medians in ms:\n`)
    print(
      mdTable(
        ['decode + preprocess', 'inference (both models)', 'server total', 'HTTP + client', 'client total', 'client p95', 'client p99'],
        [[single.decodeMs, single.inferenceMs, single.serverTotalMs, single.httpMs, single.clientTotalMs, single.clientP95Ms, single.clientP99Ms]],
      ),
    )
    const url = `${svc.baseUrl}/score`
    const sessionThreads = sessionThreadsFromLog(readFileSync(logFile, 'utf8'))
    for (const c of plan.concurrency) {
      svc.resetPeak()
      // Read when the measured window opens and closes (not around the load process's start-up).
      const sample = () => ({ server: svc.cpuSeconds(), self: selfCpuSeconds(), threads: threadCpu(svc.pid), kinds: threadCpuByKind(svc.pid, sessionThreads), mark: markNoise(0) })
      const gc0 = await gcTotals(svc.baseUrl)
      const { result: r, before, after, wallSec: wall } = await runLoadSampled({ url, imagesDir: args.images, connections: c, durationSec: plan.loadSec, warmupSec: plan.loadWarmupSec, timeoutSec: 30 }, sample)
      const threads = threadShare(svc.pid, before.threads, after.threads, wall)
      const images = Math.max(1, r.ok)
      const serverCpu = after.server - before.server
      const cpuMsPerImageByThread = Object.fromEntries([...after.kinds].map(([k, v]) => [k, round(((v - (before.kinds.get(k) ?? 0)) * 1000) / images, 2)]).filter(([, v]) => (v as number) > 0.05))
      // ours: the server, the load generator and this driver, over the measured window.
      const ours = serverCpu + r.loadGenCores * wall + after.self - before.self
      const noise = noiseBetween(before.mark, after.mark, ours)
      const drainMs = await waitIdle(svc.baseUrl)
      const gc1 = await gcTotals(svc.baseUrl)
      const mem = svc.peakMemory()
      levels.push({
        ...r,
        noise,
        threads,
        cpuMsPerImageByThread,
        drainMs: round(drainMs),
        imagesPerSec: round(r.imagesPerSec),
        loadGenCores: round(r.loadGenCores, 2),
        latency: { ...r.latency, meanMs: round(r.latency.meanMs), p50Ms: round(r.latency.p50Ms), p95Ms: round(r.latency.p95Ms), p99Ms: round(r.latency.p99Ms), maxMs: round(r.latency.maxMs) },
        serverCores: round(serverCpu / wall, 2),
        cpuMsPerImage: round((serverCpu * 1000) / images, 1),
        // Over the whole level (warm-up and drain included), per 1,000 images answered.
        gc: { majorPer1000: round(((gc1.major - gc0.major) * 1000) / Math.max(1, r.ok + r.warmupOk), 1), pauseMsPerImage: round(((gc1.seconds - gc0.seconds) * 1000) / Math.max(1, r.ok + r.warmupOk), 2) },
        peakRssMb: round(mem.rssMb),
        hwmMb: round(mem.hwmMb),
        ratioToLimit: limit ? round(r.imagesPerSec / limit, 2) : Number.NaN,
      })
      process.stderr.write(`  concurrency ${c}: ${round(r.imagesPerSec)} images/s, p99 ${round(r.latency.p99Ms)} ms\n`)
    }
  } finally {
    await svc.stop()
  }
  print(
    `\nLoad: raw-body POST /score, ${plan.loadSec} s per level after ${plan.loadWarmupSec} s warm-up; limit = ${limit ?? 'not measured'} images/s. CPU figures cover the measured seconds only; foreign cores: ` +
      'the machine\'s busy time not in the server, the load generator or this driver (kernel work for the loopback connections among it):\n',
  )
  print(
    mdTable(
      ['conc', 'images/s', 'p50 ms', 'p95 ms', 'p99 ms', 'errors', 'server CPU (cores)', 'of which main thread', 'CPU ms/image', 'loadgen CPU', 'foreign cores', 'machine busy (cores)', 'full GCs per 1,000 images', 'GC pause ms/image', 'drain ms', 'peak RSS MB', 'VmHWM MB', 'service/limit'],
      levels.map((l) => [
        l.connections,
        l.imagesPerSec,
        l.latency.p50Ms,
        l.latency.p95Ms,
        l.latency.p99Ms,
        l.errors + l.timeouts + Object.values(l.non2xx).reduce((s, n) => s + n, 0),
        l.serverCores,
        l.threads.mainCores,
        l.cpuMsPerImage,
        l.loadGenCores,
        l.noise.foreignCores,
        l.noise.machineCores,
        l.gc.majorPer1000,
        l.gc.pauseMsPerImage,
        l.drainMs,
        l.peakRssMb,
        l.hwmMb,
        l.ratioToLimit,
      ]),
    ),
  )

  // Where each image's CPU goes, thread kind by thread kind: what grows with the load.
  const kinds = [...new Set(levels.flatMap((l) => Object.keys(l.cpuMsPerImageByThread)))].sort()
  print('\nServer CPU per image by thread kind, ms (session threads as the service logged them; the others by their /proc name, # for digits; "node": libuv pool, V8 helpers):\n')
  print(mdTable(['conc', ...kinds], levels.map((l) => [l.connections, ...kinds.map((k) => l.cpuMsPerImageByThread[k] ?? 0)])))

  const profile = args.profile ? await profilePhase(entry) : undefined

  const epLog = join(projectRoot, 'bench', 'results', 'server-webgpu.log')
  let providers: ProviderReport | { error: string }
  try {
    const ep = await startService({ entry: 'tsx', modelsDir, env: { ...serviceEnv, EXECUTION_PROVIDERS: 'webgpu,cpu' }, logFile: epLog })
    try {
      providers = await providerReport(ep.baseUrl, 'webgpu,cpu', readFileSync(epLog, 'utf8'), images[0]!)
    } finally {
      await ep.stop()
    }
    section('3. Execution providers: EXECUTION_PROVIDERS=webgpu,cpu')
    for (const m of providers.models) print(`GET /models: ${m.id} provider=${m.provider} fallbacks=${JSON.stringify(m.fallbacks)}`)
    for (const l of providers.fallbackMetric) print(`GET /metrics: ${l}`)
    for (const w of providers.warnings) print(`log: ${w}`)
    print(`POST /score on the fallback: ${providers.scoreStatus}`)
  } catch (err) {
    providers = { error: err instanceof Error ? err.message : String(err) }
    print(`provider check failed: ${providers.error}`)
  }
  return { entry: entry.replace(projectRoot, ''), startups, idleRssMb: round(idle.rssMb), single: single!, levels, profile, providers }
}

/** A fresh server under `node --cpu-prof`, loaded at 8 connections: where the main thread's time goes. */
async function profilePhase(entry: string) {
  const dir = join(projectRoot, 'bench', 'results', `prof-${stamp}`)
  const svc = await startService({ entry, modelsDir, env: serviceEnv, logFile: join(projectRoot, 'bench', 'results', 'server-prof.log'), nodeArgs: ['--cpu-prof', '--cpu-prof-dir', dir] })
  let threads: ThreadShare
  let load: LoadResult
  try {
    const sampled = await runLoadSampled({ url: `${svc.baseUrl}/score`, imagesDir: args.images, connections: 8, durationSec: plan.loadSec, warmupSec: plan.loadWarmupSec, timeoutSec: 30 }, () => threadCpu(svc.pid))
    load = sampled.result
    threads = threadShare(svc.pid, sampled.before, sampled.after, sampled.wallSec)
    await waitIdle(svc.baseUrl)
  } finally {
    await svc.stop()
  }
  const file = readdirSync(dir).find((f) => f.endsWith('.cpuprofile'))
  if (!file) throw new Error(`no .cpuprofile written in ${dir}`)
  const summary = summarizeCpuProfile(join(dir, file))
  section('Profile: main thread of the server under 8 connections (node --cpu-prof, self time)')
  print(`${round(load.imagesPerSec)} images/s while profiled; server threads: main ${threads.mainCores} cores, others ${threads.otherCores} (busiest: ${threads.topOthers.join(', ')}); profile covers ${summary.totalMs} ms (start-up included)\n`)
  print(mdTable(['function', 'self ms', 'share'], summary.entries.map((e) => [e.label.replace(/\|/g, '/'), e.selfMs, `${e.share}%`])))
  return { file: join(dir, file), imagesPerSec: round(load.imagesPerSec), threads, ...summary }
}

async function main() {
  if (args['wait-quiet']) {
    const q = await waitQuiet(Number(args['wait-quiet']) * 60_000)
    print(`waited ${round(q.waitedMs / 1000)} s for a quiet machine: ${q.quiet ? 'quiet' : 'still busy'} (${q.busyCores} cores busy over the last 5 s)`)
  }
  const machine = machineInfo()
  print(`# nima-serve bench${quick ? ' (--quick)' : ''} — ${new Date().toISOString()}`)
  print(`\n${machine.uptimeBefore}`)
  print(`node ${machine.node}, ${machine.cpus} × ${machine.cpuModel}, ${machine.memoryGiB} GiB; onnxruntime-node ${machine.onnxruntimeNode}, sharp ${machine.sharp}, autocannon ${machine.autocannon}`)
  const desc = describeImages(images)
  print(`${desc.count} sample JPEGs from ${args.images} (mean ${Math.round(desc.meanBytes / 1024)} KiB); service env: ${JSON.stringify(serviceEnv)}; ${scoreCacheNote(serviceEnv)}`)
  if (!existsSync(modelsDir)) throw new Error(`models folder ${modelsDir} does not exist`)

  const raw = args['skip-raw'] ? undefined : await rawPhase()
  const service = args['skip-service'] ? undefined : await servicePhase(raw?.limit.imagesPerSec)

  const targets: { target: string; value: string; pass: boolean | null }[] = []
  if (service) {
    const best = service.levels.reduce((a, b) => (b.imagesPerSec > a.imagesPerSec ? b : a))
    const c8 = service.levels.find((l) => l.connections === 8)
    const hwm = Math.max(...service.levels.map((l) => l.hwmMb))
    const ready = Math.min(...service.startups.map((s) => s.medianReadyMs))
    if (raw) targets.push({ target: 'service/limit ≥ 0.90 at best concurrency', value: `${best.imagesPerSec} / ${raw.limit.imagesPerSec} = ${best.ratioToLimit} (conc ${best.connections})`, pass: best.ratioToLimit >= 0.9 })
    if (raw) {
      // images/s moves with whatever else runs on the machine; CPU per image hardly does. The same
      // ratio on CPU: the limit's CPU per image over the service's, at the service's most efficient level.
      const limitCpu = Math.min(...raw.pipelines.map((p) => p.cpuMsPerImage))
      const serviceCpu = Math.min(...service.levels.map((l) => l.cpuMsPerImage))
      const ratio = round(limitCpu / serviceCpu, 2)
      targets.push({
        target: 'same on CPU per image (noise-robust): limit ms / service ms ≥ 0.90',
        value: `${limitCpu} / ${serviceCpu} = ${ratio}; idle-machine capacity ${round((machine.cpus * 1000) / serviceCpu)} vs ${round((machine.cpus * 1000) / limitCpu)} images/s`,
        pass: ratio >= 0.9,
      })
    }
    // Issue #14: flat past saturation. Each level's foreign cores say how far another tenant bent it.
    const flat = service.levels.filter((l) => l.connections >= 4 && l.connections <= 32)
    if (raw && flat.length > 0) {
      const worst = flat.reduce((a, b) => (b.ratioToLimit < a.ratioToLimit ? b : a))
      targets.push({ target: 'service/limit ≥ 0.95 at every concurrency 4..32', value: flat.map((l) => `${l.connections}: ${l.ratioToLimit}`).join(', '), pass: worst.ratioToLimit >= 0.95 })
    }
    const c4 = service.levels.find((l) => l.connections === 4)
    const c32 = service.levels.find((l) => l.connections === 32)
    if (c4 && c32) {
      const growth = round((100 * (c32.cpuMsPerImage - c4.cpuMsPerImage)) / c4.cpuMsPerImage, 1)
      targets.push({ target: 'CPU per image at conc 32 within 5 % of conc 4', value: `${c32.cpuMsPerImage} vs ${c4.cpuMsPerImage} ms (${growth >= 0 ? '+' : ''}${growth} %)`, pass: Math.abs(growth) <= 5 })
      // Every core busy: the whole machine at saturation, with the server's share of it (the load
      // generator and the kernel's loopback work run on the same cores).
      const saturated = service.levels.filter((l) => l.connections >= 8)
      const fullest = saturated.reduce((a, b) => (b.noise.machineCores > a.noise.machineCores ? b : a), saturated[0] ?? c32)
      targets.push({
        target: `≥ ${round(machine.cpus * 0.95, 2)} of ${machine.cpus} cores busy at saturation (8+ connections)`,
        value: `${fullest.noise.machineCores} busy at conc ${fullest.connections}: server ${fullest.serverCores}, load generator ${fullest.loadGenCores}, the rest ${round(fullest.noise.machineCores - fullest.serverCores - fullest.loadGenCores, 2)}`,
        pass: fullest.noise.machineCores >= machine.cpus * 0.95,
      })
      targets.push({ target: 'RSS at conc 32 ≤ 450 MB', value: `${c32.peakRssMb} MB`, pass: c32.peakRssMb <= 450 })
    }
    if (c8) targets.push({ target: 'p99 at conc 8 ≤ 3 × single-request latency', value: `${c8.latency.p99Ms} ms vs 3 × ${service.single.clientTotalMs} = ${round(3 * service.single.clientTotalMs)} ms`, pass: c8.latency.p99Ms <= 3 * service.single.clientTotalMs })
    const viaTsx = service.entry === 'tsx' ? ' (tsx server: its loader adds ≈ 45 MB; the full run measures the compiled one)' : ''
    // 400 MB until issue #14; the two session threads' V8 isolates add about 25–30 MB.
    targets.push({ target: 'peak RSS ≤ 450 MB', value: `VmHWM ${round(hwm)} MB${viaTsx}`, pass: hwm <= 450 })
    targets.push({ target: 'start-up to ready < 2 s', value: service.startups.map((s) => `${s.entry.replace(projectRoot, '')}: ${s.medianReadyMs} ms`).join('; '), pass: ready < 2000 })
    section('Targets')
    print(mdTable(['target', 'measured', 'met'], targets.map((t) => [t.target, t.value, t.pass === null ? '–' : t.pass ? 'yes' : 'NO'])))
  }
  const uptimeAfter = uptime()
  print(`\n${uptimeAfter}`)
  writeJson(outFile, { kind: 'nima-serve-bench', quick, startedAt: stamp, machine: { ...machine, uptimeAfter }, plan, serviceEnv, modelsDir, images: desc, raw, service, targets })
  print(`\nwrote ${outFile}`)
}

main().catch((err: unknown) => {
  process.stderr.write(`bench failed: ${err instanceof Error ? err.stack : String(err)}\n`)
  process.exitCode = 1
})
