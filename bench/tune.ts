/**
 * npm run bench:tune [-- --quick] [--only raw,threads,uv,batch,worker] [--concurrency 8]
 *                    [--add 'ORT_INTRA_OP_THREADS=2,BATCH_MAX_SIZE=8'] [--add defaults] [--repeat 2]
 *
 * Sweeps the serving levers one group at a time against the shipped defaults:
 *  raw     in-process pipeline (no HTTP) under different ORT session settings;
 *  threads ORT_INTRA_OP_THREADS / ORT_INTER_OP_THREADS / ORT_ALLOW_SPINNING;
 *  uv      UV_THREADPOOL_SIZE and libvips threads per image (sharp.concurrency);
 *  batch   BATCH_MAX_SIZE × BATCH_MAX_WAIT_MS;
 *  worker  ONNX Runtime sessions on worker threads (the default) against the main thread, and their thread counts;
 *  memory  glibc malloc arenas, ORT's CPU memory arena and memory patterns.
 * Service configs each get a fresh server and one autocannon level (default 8
 * connections). Levers that src/ does not expose are BENCH_* variables applied by
 * bench/lib/levers.ts. Writes bench/results/tune-<time>.json.
 */
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { testModelsDir } from '../test/helpers/models.js'
import { loadSampleJpegs } from './lib/images.js'
import { applyLevers, leversFromEnv } from './lib/levers.js'
import { runLoadSampled } from './lib/load.js'
import { markNoise, noiseBetween, noiseSince, selfCpuSeconds, waitQuiet, type Noise } from './lib/noise.js'
import { gcTotals, waitIdle } from './lib/probes.js'
import { loadModels, measurePipeline, type ModelMode } from './lib/raw.js'
import { machineInfo, mdTable, print, section, timestamp, uptime, writeJson } from './lib/report.js'
import { buildDist, projectRoot, scoreCacheNote, startService } from './lib/server.js'
import { round } from './lib/stats.js'

const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    concurrency: { type: 'string', default: '8' },
    add: { type: 'string', multiple: true, default: [] },
    repeat: { type: 'string', default: '1' },
    images: { type: 'string', default: resolve(projectRoot, '../shared/images') },
    'models-dir': { type: 'string' },
    out: { type: 'string' },
    'wait-quiet': { type: 'string' },
    server: { type: 'string', default: 'dist' },
  },
})

type Env = Record<string, string>
interface ServiceConfig {
  group: string
  label: string
  env: Env
}

/** 'K=V,K=V'; 'defaults' is the empty set. */
const parseEnv = (s: string): Env => (s === 'defaults' ? {} : Object.fromEntries(s.split(',').filter(Boolean).map((kv) => kv.split('=') as [string, string])))

// Shipped defaults: sessions on worker threads, intra 0 (the budget shared out: 1 each on 2 cores), inter 1,
// spinning off, batch 4 / wait 2, UV 4, sharp 1, MALLOC_ARENA_MAX 2.
const serviceConfigs: ServiceConfig[] = [
  { group: 'threads', label: 'defaults (worker threads, intra 0, inter 1, spinning off, batch 4)', env: {} },
  { group: 'threads', label: 'spinning on (the old default)', env: { ORT_ALLOW_SPINNING: 'true' } },
  { group: 'threads', label: 'spinning on, batch 8 (the old defaults)', env: { ORT_ALLOW_SPINNING: 'true', BATCH_MAX_SIZE: '8' } },
  { group: 'threads', label: 'intra 1', env: { ORT_INTRA_OP_THREADS: '1' } },
  { group: 'threads', label: 'intra 2', env: { ORT_INTRA_OP_THREADS: '2' } },
  { group: 'threads', label: 'intra 0, inter 2 (parallel mode)', env: { ORT_INTER_OP_THREADS: '2' } },
  { group: 'uv', label: 'UV_THREADPOOL_SIZE 2', env: { UV_THREADPOOL_SIZE: '2' } },
  { group: 'uv', label: 'UV_THREADPOOL_SIZE 8', env: { UV_THREADPOOL_SIZE: '8' } },
  { group: 'uv', label: 'sharp.concurrency 2', env: { BENCH_SHARP_CONCURRENCY: '2' } },
  { group: 'batch', label: 'batch 1', env: { BATCH_MAX_SIZE: '1', BATCH_MAX_WAIT_MS: '0' } },
  { group: 'batch', label: 'batch 4, wait 0', env: { BATCH_MAX_WAIT_MS: '0' } },
  { group: 'batch', label: 'batch 4, wait 10', env: { BATCH_MAX_WAIT_MS: '10' } },
  { group: 'batch', label: 'batch 8, wait 2', env: { BATCH_MAX_SIZE: '8' } },
  { group: 'batch', label: 'batch 16, wait 2', env: { BATCH_MAX_SIZE: '16' } },
  { group: 'worker', label: 'sessions on the main thread, intra 0 (the old default)', env: { INFERENCE_THREAD: 'main' } },
  { group: 'worker', label: 'sessions on worker threads, intra 2', env: { ORT_INTRA_OP_THREADS: '2' } },
  { group: 'worker', label: 'sessions on worker threads, 1 decode slot', env: { DECODE_CONCURRENCY: '1' } },
  { group: 'worker', label: 'sessions on worker threads, 3 decode slots', env: { DECODE_CONCURRENCY: '3' } },
  { group: 'memory', label: 'defaults + BENCH_* preload (tsx hooks; baseline for lever rows)', env: { BENCH_ORT_ARENA: '1' } },
  { group: 'memory', label: 'MALLOC_ARENA_MAX unset (glibc default)', env: { MALLOC_ARENA_MAX: '' } },
  { group: 'memory', label: 'ORT CPU arena off', env: { BENCH_ORT_ARENA: '0' } },
  { group: 'memory', label: 'ORT memory pattern off', env: { BENCH_ORT_MEMPATTERN: '0' } },
  ...args.add.map((a) => ({ group: 'custom', label: a, env: parseEnv(a) })),
]

interface RawConfig {
  label: string
  intra: number
  /** ORT_ALLOW_SPINNING for the sessions (default: off, as shipped). */
  spinning?: boolean
  worker?: boolean
  mode: ModelMode
  batch?: number
  decodes?: number
}

const rawConfigs: RawConfig[] = [
  { label: 'intra 0, spinning off (defaults)', intra: 0, mode: 'serial' },
  { label: 'intra 0, spinning on', intra: 0, spinning: true, mode: 'serial' },
  { label: 'intra 0, models Promise.all', intra: 0, mode: 'concurrent' },
  { label: 'intra 0, batch 8', intra: 0, mode: 'serial', batch: 8 },
  { label: 'intra 0, batch 16', intra: 0, mode: 'serial', batch: 16 },
  { label: 'intra 0, 1 decode in flight', intra: 0, mode: 'serial', decodes: 1 },
  { label: 'intra 0, 4 decodes in flight', intra: 0, mode: 'serial', decodes: 4 },
  { label: 'intra 1', intra: 1, mode: 'serial' },
  { label: 'worker threads, intra 1, models concurrent', intra: 1, worker: true, mode: 'concurrent' },
  { label: 'worker threads, intra 0, models concurrent', intra: 0, worker: true, mode: 'concurrent' },
  { label: 'worker threads, intra 0, models serial', intra: 0, worker: true, mode: 'serial' },
]

const quick = args.quick
const only = args.only ? new Set(args.only.split(',')) : undefined
const wanted = (group: string) => !only || only.has(group)
const connections = args.concurrency.split(',').map(Number)
const repeat = Number(args.repeat)
const loadSec = quick ? 4 : 10
const warmupSec = quick ? 1 : 2
const modelsDir = resolve(args['models-dir'] ?? (await testModelsDir()))
const images = loadSampleJpegs(args.images)
const stamp = timestamp()

interface ServiceRow {
  group: string
  label: string
  env: Env
  connections: number
  imagesPerSec: number
  p50Ms: number
  p99Ms: number
  errors: number
  serverCores: number
  /** Server CPU per scored image, ms (robust to other tenants). */
  cpuMsPerImage: number
  /** Full collections of the main isolate per 1,000 images (warm-up included). */
  majorGcsPer1000: number
  idleRssMb: number
  hwmMb: number
  readyMs: number
  noise: Noise
}

async function serviceSweep(): Promise<ServiceRow[]> {
  const rows: ServiceRow[] = []
  const configs = serviceConfigs.filter((c) => wanted(c.group))
  if (configs.length === 0) return rows
  const entry = (args.server === 'dist' ? buildDist((m) => print(m)) : undefined) ?? 'tsx'
  print(`service: ${entry === 'tsx' ? 'node --import tsx src/main.ts' : `node ${entry.replace(projectRoot, '')}`}`)
  for (let k = 0; k < repeat; k++) {
    for (const cfg of configs) {
      const svc = await startService({ entry, modelsDir, env: cfg.env, logFile: join(projectRoot, 'bench', 'results', 'server-tune.log') })
      const idleRssMb = round(svc.peakMemory().rssMb)
      try {
        for (const c of connections) {
          await waitIdle(svc.baseUrl)
          const gc0 = await gcTotals(svc.baseUrl)
          const sample = () => ({ server: svc.cpuSeconds(), self: selfCpuSeconds(), mark: markNoise(0) })
          const { result: r, before, after, wallSec: wall } = await runLoadSampled({ url: `${svc.baseUrl}/score`, imagesDir: args.images, connections: c, durationSec: loadSec, warmupSec, timeoutSec: 30 }, sample)
          const serverCpu = after.server - before.server
          const majorGcs = (await gcTotals(svc.baseUrl)).major - gc0.major
          const row: ServiceRow = {
            group: cfg.group,
            label: cfg.label,
            env: cfg.env,
            connections: c,
            imagesPerSec: round(r.imagesPerSec),
            p50Ms: round(r.latency.p50Ms),
            p99Ms: round(r.latency.p99Ms),
            errors: r.errors + r.timeouts + Object.values(r.non2xx).reduce((s, n) => s + n, 0),
            serverCores: round(serverCpu / wall, 2),
            cpuMsPerImage: round((serverCpu * 1000) / Math.max(1, r.ok), 1),
            majorGcsPer1000: round((majorGcs * 1000) / Math.max(1, r.ok + r.warmupOk), 1),
            idleRssMb,
            hwmMb: round(svc.peakMemory().hwmMb),
            readyMs: round(svc.readyMs),
            noise: noiseBetween(before.mark, after.mark, serverCpu + r.loadGenCores * wall + after.self - before.self),
          }
          rows.push(row)
          process.stderr.write(`  ${cfg.label} @${c}: ${row.imagesPerSec} images/s, p99 ${row.p99Ms} ms, server ${row.serverCores} cores, foreign ${row.noise.foreignCores}\n`)
        }
      } finally {
        await svc.stop()
      }
    }
  }
  return rows
}

interface RawRow extends RawConfig {
  imagesPerSec: number
  cpuMsPerImage: number
  inferenceBusy: number
  noise: Noise
}

async function rawSweep(): Promise<RawRow[]> {
  const rows: RawRow[] = []
  const baseline = leversFromEnv()
  for (let k = 0; k < repeat; k++) {
    for (const cfg of rawConfigs) {
      const models = await loadModels(modelsDir, ['aesthetic', 'technical'], { providers: ['cpu'], intraOpThreads: cfg.intra, interOpThreads: 1, allowSpinning: cfg.spinning ?? false, thread: cfg.worker ? 'worker' : 'main' })
      try {
        const mark = markNoise(selfCpuSeconds())
        const r = await measurePipeline(images, models, { batch: cfg.batch ?? 4, decodeConcurrency: cfg.decodes ?? 2, mode: cfg.mode, warmupMs: quick ? 500 : 1500, ms: quick ? 2500 : 6000 })
        rows.push({ ...cfg, imagesPerSec: r.imagesPerSec, cpuMsPerImage: r.cpuMsPerImage, inferenceBusy: r.inferenceBusy, noise: noiseSince(mark, selfCpuSeconds()) })
        process.stderr.write(`  raw ${cfg.label}: ${r.imagesPerSec} images/s\n`)
      } finally {
        await Promise.all(models.map((m) => m.session.dispose()))
      }
    }
  }
  applyLevers(baseline)
  return rows
}

/** Interference only ever slows a run down, so the best of the repeats is the estimate; the median shows the spread. */
function aggregate<R extends { label: string; imagesPerSec: number; noise: Noise }>(rows: readonly R[], key: (r: R) => string = (r) => r.label) {
  const groups = new Map<string, R[]>()
  for (const r of rows) groups.set(key(r), [...(groups.get(key(r)) ?? []), r])
  return [...groups.entries()].map(([k, rs]) => {
    const sorted = [...rs].sort((a, b) => b.imagesPerSec - a.imagesPerSec)
    return { key: k, best: sorted[0]!, runs: rs.map((r) => r.imagesPerSec), medianImagesPerSec: sorted[Math.floor((sorted.length - 1) / 2)]!.imagesPerSec }
  })
}

async function main() {
  if (args['wait-quiet']) {
    const q = await waitQuiet(Number(args['wait-quiet']) * 60_000)
    print(`waited ${round(q.waitedMs / 1000)} s for a quiet machine: ${q.quiet ? 'quiet' : 'still busy'} (${q.busyCores} cores busy over the last 5 s)`)
  }
  const machine = machineInfo()
  print(`# nima-serve bench:tune${quick ? ' (--quick)' : ''} — ${new Date().toISOString()}\n\n${machine.uptimeBefore}`)
  print(`service configs at ${connections.join(',')} connections, ${loadSec} s after ${warmupSec} s warm-up, ${repeat} run(s) each; models ${modelsDir}; ${scoreCacheNote()}`)
  const raw = wanted('raw') ? await rawSweep() : []
  if (raw.length > 0) {
    section('In-process pipeline (batch 4 and 2 decodes in flight unless named), images/s')
    print(
      mdTable(
        ['session settings', 'best images/s', 'runs', 'CPU ms/image (min)', 'inference busy (best)', 'foreign cores (best)'],
        aggregate(raw).map((a) => [
          a.key,
          a.best.imagesPerSec,
          a.runs.join(' / '),
          Math.min(...raw.filter((r) => r.label === a.key).map((r) => r.cpuMsPerImage)),
          `${Math.round(a.best.inferenceBusy * 100)}%`,
          a.best.noise.foreignCores,
        ]),
      ),
    )
  }
  const service = await serviceSweep()
  if (service.length > 0) {
    section('Service over HTTP')
    print('(the best of the repeats; p50/p99/CPU/memory from that run)\n')
    print(
      mdTable(
        ['group', 'config', 'conc', 'best images/s', 'runs', 'p50 ms', 'p99 ms', 'errors', 'server cores', 'CPU ms/image', 'full GCs per 1,000 images', 'RSS ready MB', 'VmHWM MB', 'ready ms', 'foreign cores'],
        aggregate(service, (r) => `${r.label}@${r.connections}`).map(({ best: r, runs }) => [
          r.group,
          r.label,
          r.connections,
          r.imagesPerSec,
          runs.join(' / '),
          r.p50Ms,
          r.p99Ms,
          r.errors,
          r.serverCores,
          r.cpuMsPerImage,
          r.majorGcsPer1000,
          r.idleRssMb,
          r.hwmMb,
          r.readyMs,
          r.noise.foreignCores,
        ]),
      ),
    )
  }
  const uptimeAfter = uptime()
  print(`\n${uptimeAfter}`)
  const out = resolve(args.out ?? join(projectRoot, 'bench', 'results', `tune-${stamp}${quick ? '-quick' : ''}.json`))
  writeJson(out, { kind: 'nima-serve-tune', quick, startedAt: stamp, machine: { ...machine, uptimeAfter }, loadSec, warmupSec, connections, raw, service })
  print(`wrote ${out}`)
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:tune failed: ${err instanceof Error ? err.stack : String(err)}\n`)
  process.exitCode = 1
})
