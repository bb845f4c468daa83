/**
 * npm run bench:sizes — issue #28: the service on photos of the sizes suppliers send,
 * exact and PREPROCESS=fast side by side.
 *
 * The sample JPEGs (about 0.7 MP) and re-encodes of them at about 2, 3.8 and 12 MP (sharp,
 * quality 90, made in a temporary folder at run time and removed after: nothing is
 * written to the repo) are posted as raw bodies to two services, one per PREPROCESS,
 * started side by side (score cache off) and loaded one at a time, size by size, exact
 * then fast, so both modes see the same machine within seconds of each other. Per level:
 * images/s, p50/p99 and CPU ms per image of the service's process tree (the server and its
 * decode processes: images above DECODE_INLINE_MAX_PIXELS decode there).
 *
 * A file of its own rather than a phase of bench/main.ts: that run takes many minutes
 * (raw limit, six load levels, start-ups, providers), while this sweep answers one question
 * in about two, and main.ts's tables would double with a mode column.
 *
 * Options: --connections N (default 4), --duration SEC (default 10), --warmup SEC (2),
 * --images DIR, --models-dir DIR, --env KEY=VALUE (repeatable, both services), --out FILE.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import sharp from 'sharp'
import { loadConfig } from '../src/config/load.js'
import { ImageAdmission } from '../src/imaging/admission.js'
import { decodeImage } from '../src/imaging/decode.js'
import { writeTensor, type TensorSpec } from '../src/imaging/tensor.js'
import { planThreads } from '../src/threads/plan-threads.js'
import { cpuSeconds, processTree } from '../test/helpers/process-tree.js'
import { testModelsDir } from '../test/helpers/models.js'
import { loadSampleJpegs } from './lib/images.js'
import { loadModels, measureModel } from './lib/raw.js'
import { runLoadSampled } from './lib/load.js'
import { waitIdle } from './lib/probes.js'
import { machineInfo, mdTable, print, section, timestamp, uptime, writeJson } from './lib/report.js'
import { buildDist, projectRoot, startService, type RunningService } from './lib/server.js'
import { round } from './lib/stats.js'

const { values: args } = parseArgs({
  options: {
    connections: { type: 'string', default: '4' },
    duration: { type: 'string', default: '10' },
    warmup: { type: 'string', default: '2' },
    images: { type: 'string', default: resolve(projectRoot, '../shared/images') },
    'models-dir': { type: 'string' },
    env: { type: 'string', multiple: true, default: [] },
    out: { type: 'string' },
  },
})

/** Target megapixels of the re-encodes; the samples themselves come first, as they are. */
const SIZES_MP = [2, 3.8, 12]
const MODES = ['exact', 'fast'] as const

const env: Record<string, string> = {}
for (const kv of args.env) {
  const i = kv.indexOf('=')
  if (i <= 0) throw new Error(`--env expects KEY=VALUE, got ${JSON.stringify(kv)}`)
  env[kv.slice(0, i)] = kv.slice(i + 1)
}
const connections = Number(args.connections)
const durationSec = Number(args.duration)
const warmupSec = Number(args.warmup)

/** The sample JPEGs re-encoded at about `mp` megapixels each (aspect kept) into `dir`. */
async function writeSized(samples: ReturnType<typeof loadSampleJpegs>, mp: number, dir: string): Promise<{ meanMp: number; meanKiB: number }> {
  let pixels = 0
  let bytes = 0
  for (const [i, s] of samples.entries()) {
    const meta = await sharp(s.bytes).metadata()
    const scale = Math.sqrt((mp * 1e6) / (meta.width * meta.height))
    const width = Math.round(meta.width * scale)
    const height = Math.round(meta.height * scale)
    const out = await sharp(s.bytes).resize(width, height, { fit: 'fill' }).jpeg({ quality: 90 }).toBuffer()
    writeFileSync(join(dir, `${String(i).padStart(2, '0')}.jpg`), out)
    pixels += width * height
    bytes += out.length
  }
  return { meanMp: pixels / samples.length / 1e6, meanKiB: bytes / samples.length / 1024 }
}

/**
 * CPU ms per photo of the stages in this process, one photo at a time (no HTTP, no
 * queueing): the decode and preprocessing as the inline lane runs them (header, decode,
 * hashes, samples; the mode's PREPROCESS), then the tensor; inference is measured apart.
 */
async function decodeStageMs(dir: string, mode: (typeof MODES)[number], spec: TensorSpec): Promise<{ decodeMs: number; tensorMs: number; floorMs: number }> {
  const photos = loadSampleJpegs(dir)
  const maxInputPixels = loadConfig({}).MAX_INPUT_PIXELS
  const admission = new ImageAdmission({ maxInputPixels })
  const request = { sizes: [[spec.width, spec.height]] as const, preprocess: mode }
  const tensor = new Float32Array(spec.width * spec.height * 3)
  await admission.pixels(photos[0]!.bytes, request)
  const cpuMs = (u: NodeJS.CpuUsage) => (u.user + u.system) / 1000
  let decode = 0
  let convert = 0
  let floor = 0
  const rounds = 3
  for (let r = 0; r < rounds; r++) {
    for (const p of photos) {
      const a = process.cpuUsage()
      const { samples } = await admission.pixels(p.bytes, request)
      const b = process.cpuUsage()
      writeTensor(samples[0]!, spec, tensor)
      const c = process.cpuUsage()
      // The least any decode of this JPEG costs: DCT scaling by 8 (a box of 1×1 to cover),
      // which leaves only the entropy decoding and a pass per block.
      await decodeImage(p.bytes, { maxInputPixels, cover: { width: 1, height: 1 } })
      const d = process.cpuUsage()
      decode += cpuMs(b) - cpuMs(a)
      convert += cpuMs(c) - cpuMs(b)
      floor += cpuMs(d) - cpuMs(c)
    }
  }
  const n = rounds * photos.length
  return { decodeMs: decode / n, tensorMs: convert / n, floorMs: floor / n }
}

async function main() {
  const machine = machineInfo()
  const stamp = timestamp()
  const outFile = args.out ?? join(projectRoot, 'bench', 'results', `sizes-${stamp}.json`)
  print(`# nima-serve bench:sizes — ${new Date().toISOString()}`)
  print(`\n${machine.uptimeBefore}`)
  print(`node ${machine.node}, ${machine.cpus} × ${machine.cpuModel}; sharp ${machine.sharp}; ${connections} connections, ${durationSec} s per level after ${warmupSec} s warm-up; env ${JSON.stringify(env)}, SCORE_CACHE=off`)

  const samples = loadSampleJpegs(args.images)
  const work = mkdtempSync(join(tmpdir(), 'nima-bench-sizes-'))
  const sets: { label: string; dir: string; meanMp: number; meanKiB: number }[] = []
  const services = new Map<(typeof MODES)[number], RunningService>()
  try {
    const sampleMp = await Promise.all(samples.map(async (s) => sharp(s.bytes).metadata().then((m) => (m.width * m.height) / 1e6)))
    sets.push({ label: 'samples', dir: args.images, meanMp: sampleMp.reduce((a, b) => a + b, 0) / samples.length, meanKiB: samples.reduce((a, s) => a + s.bytes.length, 0) / samples.length / 1024 })
    for (const mp of SIZES_MP) {
      const dir = join(work, `${mp}mp`)
      mkdirSync(dir)
      sets.push({ label: `${mp} MP`, dir, ...(await writeSized(samples, mp, dir)) })
    }
    print(`\n${samples.length} photos per set: ${sets.map((s) => `${s.label} (mean ${round(s.meanMp, 2)} MP, ${Math.round(s.meanKiB)} KiB)`).join('; ')}`)

    const modelsDir = resolve(args['models-dir'] ?? (await testModelsDir()))
    // Where the time goes: the stages priced in this process before any service starts, so
    // nothing else runs beside them (the services' idle processes would add their own CPU).
    const config = loadConfig({})
    const threads = planThreads(config, 'started')
    const models = await loadModels(modelsDir, config.models.slice(0, 2), {
      providers: config.executionProviders,
      intraOpThreads: threads.ortIntraOpThreads.value,
      interOpThreads: config.ORT_INTER_OP_THREADS,
      allowSpinning: config.ORT_ALLOW_SPINNING,
      thread: config.INFERENCE_THREAD,
    })
    const spec = models[0]!.spec
    let inferenceMs = 0
    try {
      const tensors = Array.from({ length: 8 }, (_, i) => new Float32Array(spec.width * spec.height * 3).fill((i % 5) / 5 - 0.5))
      for (const m of models) inferenceMs += (await measureModel(m, tensors, 8, 3000)).cpuMsPerImage
    } finally {
      for (const m of models) await m.session.dispose()
    }
    const stages = new Map<string, { decodeMs: number; tensorMs: number; floorMs: number }>()
    for (const set of sets) for (const mode of MODES) stages.set(`${set.label}/${mode}`, await decodeStageMs(set.dir, mode, spec))
    // The compiled server, as deployed: under tsx each decode process it starts (and restarts,
    // after a large decode, decode-pool.ts) would load TypeScript too.
    const entry = buildDist((m) => print(m)) ?? 'tsx'
    print(`\nservers: ${entry === 'tsx' ? 'tsx src/main.ts' : 'compiled (bench/results/build)'}`)
    for (const mode of MODES) {
      const logFile = join(projectRoot, 'bench', 'results', `server-sizes-${mode}.log`)
      services.set(mode, await startService({ entry, modelsDir, env: { SCORE_CACHE: 'off', ...env, PREPROCESS: mode }, logFile }))
    }
    const rows: { set: string; mode: string; imagesPerSec: number; p50Ms: number; p99Ms: number; errors: number; cpuMsPerImage: number; treeCores: number }[] = []
    for (const set of sets) {
      for (const mode of MODES) {
        const svc = services.get(mode)!
        const sample = () => processTree(svc.pid).reduce((a, pid) => a + cpuSeconds(pid), 0)
        const { result: r, before, after, wallSec } = await runLoadSampled({ url: `${svc.baseUrl}/score`, imagesDir: set.dir, connections, durationSec, warmupSec, timeoutSec: 60 }, sample)
        await waitIdle(svc.baseUrl)
        const errors = r.errors + r.timeouts + Object.values(r.non2xx).reduce((s, n) => s + n, 0)
        rows.push({
          set: set.label,
          mode,
          imagesPerSec: round(r.imagesPerSec),
          p50Ms: round(r.latency.p50Ms),
          p99Ms: round(r.latency.p99Ms),
          errors,
          cpuMsPerImage: round(((after - before) * 1000) / Math.max(1, r.ok), 1),
          treeCores: round((after - before) / wallSec, 2),
        })
        process.stderr.write(`  ${set.label} ${mode}: ${round(r.imagesPerSec)} images/s\n`)
      }
    }
    section(`Photo sizes, exact vs PREPROCESS=fast, raw-body POST /score at ${connections} connections`)
    print(mdTable(['photos', 'mode', 'images/s', 'p50 ms', 'p99 ms', 'errors', 'CPU ms/image (server + decode processes)', 'cores busy (tree)'], rows.map((r) => [r.set, r.mode, r.imagesPerSec, r.p50Ms, r.p99Ms, r.errors, r.cpuMsPerImage, r.treeCores])))
    const rate = (set: string, mode: string) => rows.find((r) => r.set === set && r.mode === mode)!.imagesPerSec
    const ratios = [
      ...sets.map((s) => ({ what: `fast / exact at ${s.label}`, value: round(rate(s.label, 'fast') / rate(s.label, 'exact'), 2) })),
      { what: 'fast at 3.8 MP / exact on the samples', value: round(rate('3.8 MP', 'fast') / rate('samples', 'exact'), 2) },
      { what: 'exact at 3.8 MP / exact on the samples', value: round(rate('3.8 MP', 'exact') / rate('samples', 'exact'), 2) },
    ]
    print('\nRatios of images/s (same run, same machine):\n')
    print(mdTable(['ratio', 'value'], ratios.map((r) => [r.what, r.value])))
    const cores = machine.cpus
    const split = []
    for (const set of sets) {
      for (const mode of MODES) {
        const { decodeMs, tensorMs, floorMs } = stages.get(`${set.label}/${mode}`)!
        const row = rows.find((r) => r.set === set.label && r.mode === mode)!
        const stagesMs = decodeMs + tensorMs + inferenceMs
        const limit = (cores * 1000) / stagesMs
        split.push({ set: set.label, mode, floorMs: round(floorMs, 1), decodeMs: round(decodeMs, 1), tensorMs: round(tensorMs, 2), inferenceMs: round(inferenceMs, 1), restMs: round(row.cpuMsPerImage - stagesMs, 1), serviceCpuMs: row.cpuMsPerImage, limit: round(limit, 1), serviceOverLimit: round(row.imagesPerSec / limit, 2) })
      }
    }
    section('Where the CPU goes, by stage (ms per photo)')
    print(
      `Decode floor: the same JPEG decoded by libjpeg at ⅛ (entropy decoding and a pass per block: the least any decode of it costs). Decode + preprocessing (header, decode, hashes, samples) and the tensor: this process before the services started, one photo at a time, inline lane, the mode's PREPROCESS. Inference: both models at batch 8, CPU of all ORT threads per image, ${config.models.slice(0, 2).join(' + ')}. ` +
        `The rest: the service's CPU per image (table above) less those stages: HTTP, the decode process round trip where the photo goes there, batching, logging, GC. Limit: ${cores} cores kept busy with the stages alone.\n`,
    )
    print(mdTable(['photos', 'mode', 'decode floor (DCT ⅛)', 'decode + preprocess', 'tensor', 'inference', 'rest (HTTP, IPC, …)', 'service CPU/image', 'limit images/s', 'service / limit'], split.map((r) => [r.set, r.mode, r.floorMs, r.decodeMs, r.tensorMs, r.inferenceMs, r.restMs, r.serviceCpuMs, r.limit, r.serviceOverLimit])))
    const uptimeAfter = uptime()
    print(`\n${uptimeAfter}`)
    writeJson(outFile, { kind: 'nima-serve-bench-sizes', startedAt: stamp, machine: { ...machine, uptimeAfter }, env, connections, durationSec, warmupSec, sets: sets.map(({ dir: _dir, ...s }) => s), rows, ratios, split })
    print(`\nwrote ${outFile}`)
  } finally {
    for (const svc of services.values()) await svc.stop()
    rmSync(work, { recursive: true, force: true })
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`bench:sizes failed: ${err instanceof Error ? err.stack : String(err)}\n`)
  process.exitCode = 1
})
