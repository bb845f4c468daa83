/**
 * The in-process pipeline with no HTTP: the same decode, tensor and model runs the
 * service uses (src/models/model-pipeline.ts),
 * measured stage by stage and then end to end. The best end-to-end rate is "the limit"
 * the service is compared against.
 */
import { createHash } from 'node:crypto'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { decodeImage, type DecodedImage } from '../../src/imaging/decode.js'
import { tensorSize, writeTensor, type TensorSpec } from '../../src/imaging/tensor.js'
import type { SessionOptions } from '../../src/inference/onnx-backend.js'
import { loadConfig } from '../../src/config/load.js'
import { imageHashes } from '../../src/imaging/phash.js'
import { ImageAdmission } from '../../src/imaging/admission.js'
import { scanModels, selectModel } from '../../src/models/catalog.js'
import type { ModelManifest } from '../../src/models/manifest.js'
import { decodeIntoTensor, ManifestModel } from '../../src/models/model-pipeline.js'
import type { SampleImage } from './images.js'
import { median, round } from './stats.js'

const MAX_INPUT_PIXELS = loadConfig({}).MAX_INPUT_PIXELS

export interface LoadedModel {
  id: string
  manifest: ModelManifest
  session: ManifestModel
  spec: TensorSpec
}

export async function loadModels(modelsDir: string, ids: readonly string[], options: SessionOptions): Promise<LoadedModel[]> {
  const { entries } = await scanModels(modelsDir)
  const out: LoadedModel[] = []
  for (const id of ids) {
    const entry = selectModel(entries, id)
    if (!entry) throw new Error(`model ${id} not found in ${modelsDir}`)
    const session = await ManifestModel.open(entry.modelPath, entry.manifest, options)
    out.push({ id, manifest: entry.manifest, session, spec: session.spec })
  }
  return out
}

async function runModel(m: LoadedModel, input: Float32Array, n: number): Promise<Float32Array> {
  return (await m.session.run(input, n)).scores
}

/** Runs `worker` on `concurrency` loops until `ms` have passed; returns completions/s. */
async function rateOver(ms: number, concurrency: number, worker: (i: number) => Promise<void>): Promise<{ perSecond: number; count: number; elapsedMs: number }> {
  let count = 0
  let next = 0
  const started = performance.now()
  const deadline = started + ms
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < deadline) {
        await worker(next++)
        count++
      }
    }),
  )
  const elapsedMs = performance.now() - started
  return { perSecond: (count * 1000) / elapsedMs, count, elapsedMs }
}

export interface DecodeStageResult {
  concurrency: number
  photosPerSec: number
}

/** sharp decode to full-resolution RGB (decodeImage: sniff, decode, sha256 id). */
export async function measureDecode(images: readonly SampleImage[], concurrency: number, ms: number): Promise<DecodeStageResult> {
  await decodeImage(images[0]!.bytes, { maxInputPixels: MAX_INPUT_PIXELS })
  const r = await rateOver(ms, concurrency, async (i) => {
    await decodeImage(images[i % images.length]!.bytes, { maxInputPixels: MAX_INPUT_PIXELS })
  })
  return { concurrency, photosPerSec: round(r.perSecond) }
}

/**
 * In-process admission (header, then decode in this process; no memory budget, no decode
 * processes): the pipeline's own costs, as the service pays them for ordinary photos.
 */
const inProcessAdmission = (slots: number): ImageAdmission => new ImageAdmission({ maxInputPixels: MAX_INPUT_PIXELS, decodeConcurrency: slots })

/** header + decode + the hashes (phash and phashCrops) + writeTensor, as the scorer does before inference. */
export async function measureDecodePreprocess(images: readonly SampleImage[], spec: TensorSpec, concurrency: number, ms: number): Promise<DecodeStageResult> {
  const admission = inProcessAdmission(concurrency)
  const r = await rateOver(ms, concurrency, async (i) => {
    await decodeIntoTensor(admission, images[i % images.length]!.bytes, spec, new Float32Array(tensorSize(spec)))
  })
  return { concurrency, photosPerSec: round(r.perSecond) }
}

export interface MicroCosts {
  /** writeTensor alone (nearest-neighbour resize + LUT) on decoded photos, ms per photo. */
  writeTensorMs: number
  /** imageHashes (phash and phashCrops, for near-duplicates) alone on decoded photos, ms per photo. */
  phashMs: number
  /** decodeImage alone, ms per photo (one at a time): what phashMs is compared with. */
  decodeMs: number
  /** sha256 of the JPEG bytes (image id), ms per photo. */
  sha256Ms: number
  /** Copying one 224×224×3 float tensor into a batch buffer (NimaModel's batch assembly), ms. */
  batchCopyMs: number
  /** Allocating one zeroed 224×224×3 Float32Array, ms. */
  allocMs: number
}

export async function measureMicroCosts(images: readonly SampleImage[], spec: TensorSpec, ms: number): Promise<MicroCosts> {
  const decoded: DecodedImage[] = []
  for (const img of images) decoded.push(await decodeImage(img.bytes, { maxInputPixels: MAX_INPUT_PIXELS }))
  const per = tensorSize(spec)
  const t = new Float32Array(per)
  const timeSync = (fn: (i: number) => void) => {
    let n = 0
    const started = performance.now()
    while (performance.now() - started < ms / 4) fn(n++)
    return (performance.now() - started) / n
  }
  const timeAsync = async (fn: (i: number) => Promise<unknown>) => {
    let n = 0
    const started = performance.now()
    while (performance.now() - started < ms / 4) await fn(n++)
    return (performance.now() - started) / n
  }
  const batch = new Float32Array(per * 8)
  return {
    writeTensorMs: round(timeSync((i) => writeTensor(decoded[i % decoded.length]!, spec, t)), 3),
    phashMs: round(timeSync((i) => imageHashes(decoded[i % decoded.length]!)), 3),
    decodeMs: round(await timeAsync((i) => decodeImage(images[i % images.length]!.bytes, { maxInputPixels: MAX_INPUT_PIXELS })), 3),
    sha256Ms: round(timeSync((i) => createHash('sha256').update(images[i % images.length]!.bytes).digest('hex')), 3),
    batchCopyMs: round(timeSync((i) => batch.set(t, (i % 8) * per)), 3),
    allocMs: round(timeSync(() => new Float32Array(per)), 3),
  }
}

export interface ModelStageResult {
  model: string
  batch: number
  imagesPerSec: number
  msPerRun: number
  /** Longest event-loop stall seen while runs were in flight (session.run is synchronous in onnxruntime-node). */
  eventLoopMaxBlockMs: number
  cpuMsPerImage: number
}

/** One model alone at one batch size, on real preprocessed photos. */
export async function measureModel(m: LoadedModel, tensors: readonly Float32Array[], batch: number, ms: number): Promise<ModelStageResult> {
  const per = tensorSize(m.spec)
  const input = new Float32Array(per * batch)
  for (let i = 0; i < batch; i++) input.set(tensors[i % tensors.length]!, i * per)
  await runModel(m, input, batch) // first run at a new shape pays ORT's lazy set-up
  const runs: number[] = []
  const h = monitorEventLoopDelay({ resolution: 5 })
  h.enable()
  const cpu0 = process.cpuUsage()
  const started = performance.now()
  while (performance.now() - started < ms || runs.length < 3) {
    const t0 = performance.now()
    await runModel(m, input, batch)
    runs.push(performance.now() - t0)
  }
  const elapsed = performance.now() - started
  const cpu = process.cpuUsage(cpu0)
  h.disable()
  return {
    model: m.id,
    batch,
    imagesPerSec: round((runs.length * batch * 1000) / elapsed),
    msPerRun: round(median(runs), 2),
    eventLoopMaxBlockMs: round(h.max / 1e6, 1),
    cpuMsPerImage: round((cpu.user + cpu.system) / 1000 / (runs.length * batch), 2),
  }
}

export type ModelMode = 'serial' | 'concurrent'

export interface PipelineOptions {
  batch: number
  /** decodes in flight at once (each on a libuv thread). */
  decodeConcurrency: number
  /** 'serial': await model A then B per batch; 'concurrent': Promise.all over both. */
  mode: ModelMode
  warmupMs: number
  ms: number
}

export interface PipelineResult extends Omit<PipelineOptions, 'warmupMs' | 'ms'> {
  imagesPerSec: number
  /** CPU this process spent per image (all threads), ms: robust to other tenants, unlike images/s. */
  cpuMsPerImage: number
  /** Share of wall time the inference loop was running a model. */
  inferenceBusy: number
}

/**
 * The limit: decoders fill batch buffers in place (no per-image copy), the inference loop
 * runs every model on each full batch. Decoding overlaps inference; at most two full
 * batches wait, so decoders pause rather than race ahead.
 */
export async function measurePipeline(images: readonly SampleImage[], models: readonly LoadedModel[], o: PipelineOptions): Promise<PipelineResult> {
  const spec = models[0]!.spec
  const per = tensorSize(spec)
  const admission = inProcessAdmission(o.decodeConcurrency)
  const ready: Float32Array[] = []
  let filling = new Float32Array(per * o.batch)
  let slots = 0
  let stop = false
  let wakeConsumer: (() => void) | undefined
  let wakeProducers: (() => void)[] = []
  let nextImage = 0

  const producer = async () => {
    while (!stop) {
      while (ready.length >= 2 && !stop) await new Promise<void>((r) => wakeProducers.push(r))
      if (stop) return
      const img = images[nextImage++ % images.length]!
      await decodeIntoTensor(admission, img.bytes, spec, filling, slots)
      if (++slots === o.batch) {
        ready.push(filling)
        filling = new Float32Array(per * o.batch)
        slots = 0
        wakeConsumer?.()
      }
    }
  }

  let done = 0
  let busyMs = 0
  let measuredFrom = 0
  let doneAtStart = 0
  let busyAtStart = 0
  let cpuAtStart = process.cpuUsage()
  const consumer = async () => {
    const started = performance.now()
    const end = started + o.warmupMs + o.ms
    let warm = false
    while (performance.now() < end) {
      if (!warm && performance.now() >= started + o.warmupMs) {
        warm = true
        measuredFrom = performance.now()
        doneAtStart = done
        busyAtStart = busyMs
        cpuAtStart = process.cpuUsage()
      }
      if (ready.length === 0) {
        await new Promise<void>((r) => (wakeConsumer = r))
        wakeConsumer = undefined
        continue
      }
      const input = ready.shift()!
      const waiters = wakeProducers
      wakeProducers = []
      for (const w of waiters) w()
      const t0 = performance.now()
      if (o.mode === 'serial') for (const m of models) await runModel(m, input, o.batch)
      else await Promise.all(models.map((m) => runModel(m, input, o.batch)))
      busyMs += performance.now() - t0
      done += o.batch
    }
    stop = true
    for (const w of wakeProducers) w()
  }
  await Promise.all([consumer(), ...Array.from({ length: o.decodeConcurrency }, producer)])
  const elapsed = performance.now() - measuredFrom
  const cpu = process.cpuUsage(cpuAtStart)
  return {
    batch: o.batch,
    decodeConcurrency: o.decodeConcurrency,
    mode: o.mode,
    imagesPerSec: round(((done - doneAtStart) * 1000) / elapsed),
    cpuMsPerImage: round((cpu.user + cpu.system) / 1000 / Math.max(1, done - doneAtStart), 2),
    inferenceBusy: round((busyMs - busyAtStart) / elapsed, 2),
  }
}

/** Decodes and preprocesses every sample once, for the model stages. */
export async function preprocessAll(images: readonly SampleImage[], spec: TensorSpec): Promise<Float32Array[]> {
  const out: Float32Array[] = []
  for (const img of images) {
    const d = await decodeImage(img.bytes, { maxInputPixels: MAX_INPUT_PIXELS })
    const t = new Float32Array(tensorSize(spec))
    writeTensor(d, spec, t)
    out.push(t)
  }
  return out
}
