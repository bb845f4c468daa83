import { availableParallelism } from 'node:os'
import { NimaError } from '../errors.js'
import { decodeImage, type DecodedImage } from '../imaging/decode.js'
import { decodeBytesEstimate, readImageHeader } from '../imaging/decode-cost.js'
import { DecodePool } from '../imaging/decode-pool.js'
import { imageHashes } from '../imaging/phash.js'
import { tensorSize, writeTensor, type RgbImage, type TensorSpec } from '../imaging/tensor.js'
import { TensorPool } from '../imaging/tensor-pool.js'
import type { DropStage, ScoringObserver } from './observer.js'
import { createLimiter, type Limiter } from '../util/limiter.js'
import type { BoundCalibration, CalibratedFields } from '../calibration/bound-calibration.js'
import { SPAN, startSpan, traced } from '../util/tracing.js'
import { combinedScore, type CombinedScore, type Weights } from './combined.js'
import { summarize, type ScoreSummary } from './distribution.js'
import type { ModelInfo } from '../models/model-pipeline.js'
import type { NimaModel } from './nima-model.js'

export interface ImageSummary {
  id: string
  width: number
  height: number
  format: string
  bytes: number
  /** 64-bit perceptual hash, 16 hex digits (src/imaging/phash.ts): near-duplicate grouping. */
  phash: string
  /** pHashes of the four corner crops (src/imaging/phash.ts): a copy cropped on one side still matches. */
  phashCrops: string[]
}

export interface ImageScore {
  image: ImageSummary
  /** With `percentile` (and `calibrated`) where SCORE_CALIBRATION covers the model. */
  scores: Record<string, ScoreSummary & CalibratedFields>
  combined: CombinedScore & CalibratedFields
  models: Record<string, ModelInfo>
  timings: { decodeMs: number; inferenceMs: number }
}

export interface Prepared {
  summary: ImageSummary
  tensors: Map<string, Float32Array>
  prepMs: number
}

export interface ScorerOptions {
  defaultModels: readonly string[]
  defaultWeights: Weights
  maxInputPixels: number
  /**
   * Images `scoreBytes` decodes and preprocesses at once; the others wait their turn in
   * arrival order. 0 or absent: os.availableParallelism(). Beyond the core count more
   * decodes at once only make each slower (on 2 cores, CPU per image rose from 37 to
   * 45 ms past about 8 at once).
   */
  decodeConcurrency?: number
  /**
   * 'process': `scoreBytes` decodes in a pool of `decodeConcurrency` child processes, and
   * a decode past `decodeTimeoutMs` is killed (422 NIMA_DECODE_TIMEOUT). 'inline'
   * (default): in this process, unstoppable; kept for tools and comparison benchmarks.
   */
  decodeIsolation?: 'process' | 'inline'
  /**
   * Process isolation: JPEG and PNG images of at most this many pixels are decoded in
   * this process all the same. Their cost is bounded by construction (pixels × scans,
   * scans ≤ maxJpegScans; see docs), and for them the round trip to a decode process
   * would cost more than the decode. 0: every image goes to a decode process. Default 0.
   */
  decodeInlineMaxPixels?: number
  /** Process isolation: longest one decode may run. Default 5,000 ms. */
  decodeTimeoutMs?: number
  /**
   * Estimated bytes (decode-cost.ts) the decodes in flight may hold together; more wait
   * in arrival order, an image estimated above it alone is refused (413). Default: none.
   */
  decodeMemoryBudgetBytes?: number
  /** Most scans in one JPEG (422 NIMA_TOO_MANY_SCANS past it). Default 100. */
  maxJpegScans?: number
  /**
   * Ordinary photos (the inline lane) `scoreBytes` holds between admission and their
   * scores (decoding, waiting for a batch, inferring); later ones wait in arrival order as
   * the bytes they arrived as. Large images are paced by the memory budget and decode
   * slots instead. Default: no limit. See pipelineImagesFor.
   */
  pipelineImages?: number
  /** Images waiting for admission before `scoreBytes` refuses with 503 NIMA_OVERLOADED. Default: no limit. */
  maxWaiting?: number
}

/**
 * The default admission: one batch running and one forming (2 × the batch size), and
 * never fewer than a batch plus every decode slot busy. Measured at 32 connections on
 * 2 cores (docs/performance.md): with no limit every waiting image was decoded ahead and
 * CPU per image rose from 28 to 34 ms; with 6–8 admitted it stayed at 29–30 ms.
 */
export function pipelineImagesFor(batchSize: number, decodeSlots: number): number {
  return Math.max(2 * batchSize, batchSize + decodeSlots)
}

const NO_BUDGET = Number.MAX_SAFE_INTEGER

/** What the header said: the decode's estimated bytes, and whether it takes the inline lane. */
interface AdmittedHeader {
  cost: number
  inline: boolean
}
// Formats whose decode cost the header bounds: pixels (and for JPEG scans, counted).
const INLINE_FORMATS: ReadonlySet<string> = new Set(['jpeg', 'png'])
const MiB = 1024 * 1024
const MAX_POOLED_TENSORS = 64

/**
 * Bytes in, scores out: decode (at most `decodeConcurrency` at once) → one tensor per
 * distinct input spec → every requested model concurrently (each through its own
 * micro-batcher) → statistics and combined score.
 *
 * `scoreBytes` takes an AbortSignal: an image still waiting for a decode slot or for its
 * batch when the signal fires is dropped there and the call rejects with the signal's
 * reason; the observer hears of each drop and its stage (the service counts client-gone ones).
 */
export class Scorer {
  readonly models: ReadonlyMap<string, NimaModel>
  readonly #options: ScorerOptions
  readonly #observer: ScoringObserver
  readonly #decodeSlots: Limiter
  /** Slots of the in-process lane (bounded-cost JPEG/PNG): as many as the decode slots. */
  readonly #inlineSlots: Limiter
  readonly #decodeMemory: Limiter
  readonly #pool: DecodePool | undefined
  readonly #admission: Limiter
  /** Images waiting for admission, by the model ids they asked for (nima_queue_depth). */
  readonly #admissionWaiting = new Map<string, number>()
  readonly #tensors: TensorPool
  #calibration: BoundCalibration | undefined

  constructor(models: ReadonlyMap<string, NimaModel>, options: ScorerOptions, observer: ScoringObserver = {}) {
    const decodeConcurrency = options.decodeConcurrency ?? 0
    if (!Number.isInteger(decodeConcurrency) || decodeConcurrency < 0) {
      throw new RangeError(`Scorer: decodeConcurrency must be an integer ≥ 0 (0 = os.availableParallelism()), got ${String(options.decodeConcurrency)}`)
    }
    this.models = models
    this.#options = options
    this.#observer = observer
    this.#decodeSlots = createLimiter(decodeConcurrency === 0 ? availableParallelism() : decodeConcurrency)
    this.#inlineSlots = createLimiter(this.#decodeSlots.limit)
    this.#decodeMemory = createLimiter(options.decodeMemoryBudgetBytes ?? NO_BUDGET)
    this.#admission = createLimiter(options.pipelineImages ?? NO_BUDGET)
    // Enough idle tensors for every admitted image and every decode in flight; more are
    // only held after a burst of large images, and those are left to the collector.
    this.#tensors = new TensorPool(Math.min(MAX_POOLED_TENSORS, (options.pipelineImages ?? 0) + 2 * this.#decodeSlots.limit))
    // One decode process per decode slot: a slot held always finds an idle process.
    this.#pool =
      options.decodeIsolation === 'process'
        ? new DecodePool({ size: this.#decodeSlots.limit, timeoutMs: options.decodeTimeoutMs ?? 5000, maxInputPixels: options.maxInputPixels })
        : undefined
  }

  /** Decodes running (`running`) and waiting for a slot (`waiting`) in `scoreBytes`, and the limit. */
  get decodes(): { running: number; waiting: number; limit: number } {
    const lanes = [this.#decodeSlots, this.#inlineSlots]
    return { running: lanes.reduce((a, l) => a + l.active, 0), waiting: lanes.reduce((a, l) => a + l.pending, 0), limit: this.#decodeSlots.limit }
  }

  /** Estimated bytes held by decodes in flight, decodes waiting for memory, and the budget. */
  get decodeMemory(): { usedBytes: number; waiting: number; budgetBytes: number } {
    const m = this.#decodeMemory
    return { usedBytes: m.used, waiting: m.pending, budgetBytes: m.limit }
  }

  /** Decode processes (process isolation only): decodes killed on timeout, processes that died mid-decode. */
  get decodeProcesses(): { size: number; busy: number; timeouts: number; crashes: number; recycled: number } | undefined {
    return this.#pool?.stats
  }

  /** The models a request asks for, or the defaults; unknown ids are a 400. */
  resolveModels(ids?: readonly string[]): NimaModel[] {
    const wanted = ids && ids.length > 0 ? [...new Set(ids)] : this.#options.defaultModels
    const unknown = wanted.filter((id) => !this.models.has(id))
    if (unknown.length > 0) {
      throw new NimaError('NIMA_UNKNOWN_MODEL', `unknown model ${unknown.join(', ')}; loaded: ${[...this.models.keys()].join(', ')}`)
    }
    return wanted.map((id) => this.models.get(id)!)
  }

  /** Decodes in this process, outside the lanes (the batch CLI paces its own decodes). */
  decode(bytes: Buffer): Promise<DecodedImage> {
    return traced(SPAN.decode, () => ({ 'nima.decode.lane': 'inline', 'nima.image.bytes': bytes.length }), async (span) => {
      const decoded = await this.#decode(bytes)
      span?.setAttributes(imageAttributes(decoded))
      return decoded
    })
  }

  async #decode(bytes: Buffer): Promise<DecodedImage> {
    const started = performance.now()
    const decoded = await decodeImage(bytes, { maxInputPixels: this.#options.maxInputPixels })
    this.#observer.decoded?.(decoded.format, (performance.now() - started) / 1000)
    return decoded
  }

  /**
   * Synchronous half of scoring: the tensors each requested model needs (one per
   * distinct input spec) and the image summary. After this the full-resolution pixels
   * are no longer needed, so callers that drop their reference free them before inference.
   */
  prepare(image: DecodedImage, models: readonly NimaModel[]): Prepared {
    const started = performance.now()
    const tensors = tensorsFor(models, () => image, this.#tensors)
    const summary = { id: image.id, width: image.width, height: image.height, format: image.format, bytes: image.bytes, ...imageHashes(image) }
    return { summary, tensors, prepMs: performance.now() - started }
  }

  /** Decode in this process and `prepare`; `prepMs` covers both. */
  async #prepareInline(bytes: Buffer, models: readonly NimaModel[]): Promise<Prepared> {
    const started = performance.now()
    const prepared = this.prepare(await this.#decode(bytes), models)
    prepared.prepMs = performance.now() - started
    return prepared
  }

  /**
   * `prepare` with the decode in a decode process: it sends back only the pixels each
   * input size samples (tensor.ts sampleNearest), and sampling those again is the
   * identity, so the tensors are the ones `prepare` makes, value for value.
   */
  async #prepareIsolated(pool: DecodePool, bytes: Buffer, models: readonly NimaModel[]): Promise<Prepared> {
    const started = performance.now()
    const sizes = [...new Set(models.map((m) => `${m.tensorSpec.width}x${m.tensorSpec.height}`))].map((k) => k.split('x').map(Number) as [number, number])
    const { image, samples } = await pool.decode(bytes, sizes)
    this.#observer.decoded?.(image.format, (performance.now() - started) / 1000)
    const tensors = tensorsFor(models, (spec) => samples[sizes.findIndex(([w, h]) => w === spec.width && h === spec.height)]!, this.#tensors)
    return { summary: image, tensors, prepMs: performance.now() - started }
  }

  /**
   * Cost-based admission: the header is read first (pixels, JPEG scans, estimated bytes);
   * an image that alone exceeds the memory budget is refused here, before any wait.
   */
  async #readHeader(bytes: Buffer): Promise<AdmittedHeader> {
    const o = this.#options
    const header = await readImageHeader(bytes, { maxInputPixels: o.maxInputPixels, maxJpegScans: o.maxJpegScans ?? 100 })
    const cost = Math.max(1, Math.ceil(decodeBytesEstimate(header)))
    const budget = this.#decodeMemory.limit
    if (cost > budget) {
      throw new NimaError(
        'NIMA_IMAGE_TOO_LARGE',
        `Decoding this ${header.width}x${header.height} ${header.format.toUpperCase()} image needs about ${Math.ceil(cost / MiB)} MiB, more than DECODE_MEMORY_BUDGET_BYTES (${Math.floor(budget / MiB)} MiB)`,
      )
    }
    // A photo of ordinary size (JPEG/PNG within DECODE_INLINE_MAX_PIXELS, its cost bounded
    // by pixels and scans) has a lane of its own: it never waits behind large or hostile
    // images for the memory budget, a decode process or admission. Its memory is bounded by
    // the lane (slots × the largest inline estimate, about 24 MB each), not by the budget.
    const inline = INLINE_FORMATS.has(header.format) && header.width * header.height <= (o.decodeInlineMaxPixels ?? 0)
    return { cost, inline }
  }

  /**
   * The decode in the image's lane: inline, a slot of the inline lane; otherwise room in
   * the memory budget, then a decode slot (and process); in arrival order, left when
   * `signal` fires.
   */
  #decodeInLane(bytes: Buffer, models: readonly NimaModel[], header: AdmittedHeader, signal: AbortSignal | undefined): Promise<Prepared> {
    const queuedAt = performance.now()
    if (header.inline) return this.#inlineSlots.run(() => tracedDecode('inline', bytes, queuedAt, () => this.#prepareInline(bytes, models)), signal)
    const pool = this.#pool
    const lane = pool ? 'process' : 'inline'
    return this.#decodeMemory.run(
      () =>
        this.#decodeSlots.run(
          () => tracedDecode(lane, bytes, queuedAt, () => (pool ? this.#prepareIsolated(pool, bytes, models) : this.#prepareInline(bytes, models))),
          signal,
        ),
      signal,
      header.cost,
    )
  }

  /**
   * The image's summary (id, format, size, perceptual hash) through the same admission and
   * decoding as scoring (header limits, memory budget, decode slot, decode process), with
   * no tensors and no inference: for routes that store images rather than score them.
   */
  async inspect(bytes: Buffer, signal?: AbortSignal): Promise<ImageSummary> {
    return (await this.#decodeInLane(bytes, [], await this.#readHeader(bytes), signal)).summary
  }

  /**
   * Header admission, decode and tensors as `scoreBytes` does them, without inference:
   * for /explain, which runs the models itself with the feature map (one image, outside
   * the batches, so outside the pipeline admission too).
   */
  async prepareBytes(bytes: Buffer, models: readonly NimaModel[], signal?: AbortSignal): Promise<Prepared> {
    try {
      return await this.#decodeInLane(bytes, models, await this.#readHeader(bytes), signal)
    } catch (err) {
      this.#noteAbandoned('decode', err, signal)
      throw err
    }
  }

  /** Runs the prepared tensors through `models`; see the class comment for `signal`. */
  async infer(prepared: Prepared, models: readonly NimaModel[], weights?: Weights, signal?: AbortSignal): Promise<ImageScore> {
    const t0 = performance.now()
    // Every model settles before the tensors go back to the pool: a model still holding
    // one in its queue would otherwise read another image's pixels.
    const settled = await Promise.allSettled(models.map((m) => m.predict(prepared.tensors.get(m.inputKey)!, signal)))
    for (const t of prepared.tensors.values()) this.#tensors.give(t)
    prepared.tensors.clear()
    const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected')
    if (failed) {
      this.#noteAbandoned('queue', failed.reason, signal)
      throw failed.reason
    }
    const dists = settled.map((s) => (s as PromiseFulfilledResult<Float32Array>).value)
    const inferenceMs = performance.now() - t0
    const scores = models.map((m, i) => summarize(dists[i]!, m.manifest.output.scores.values))
    return this.result(prepared.summary, models, scores, weights, { decodeMs: prepared.prepMs, inferenceMs })
  }

  /**
   * An image's result from each model's score (`scores[i]` is `models[i]`'s): the combined
   * score, the models' info. For scores just inferred and for scores from the score cache alike.
   */
  result(image: ImageSummary, models: readonly NimaModel[], scores: readonly ScoreSummary[], weights: Weights | undefined, timings: ImageScore['timings']): ImageScore {
    const byModel: Record<string, ScoreSummary> = {}
    const means: Record<string, number> = {}
    const info: Record<string, ModelInfo> = {}
    models.forEach((m, i) => {
      byModel[m.info.id] = scores[i]!
      means[m.info.id] = scores[i]!.mean
      info[m.info.id] = m.info
    })
    const combined = combinedScore(models.map((m) => m.info), means, this.#options.defaultWeights, weights)
    const calibrated = this.#calibration?.annotate(byModel, combined)
    return {
      image,
      scores: calibrated?.scores ?? byModel,
      combined: calibrated?.combined ?? combined,
      models: info,
      timings,
    }
  }

  /**
   * The calibration (SCORE_CALIBRATION) bound to these models: `result` adds percentiles
   * with it. Replaced as a whole on reload; undefined: none.
   */
  get calibration(): BoundCalibration | undefined {
    return this.#calibration
  }

  useCalibration(calibration: BoundCalibration | undefined): void {
    this.#calibration = calibration
  }

  /** Tells the observer that `score` was served (the score mean histogram and the drift windows). */
  served(score: ImageScore): void {
    if (!this.#observer.served) return
    for (const [id, s] of Object.entries(score.scores)) {
      const m = this.models.get(id)
      if (m) this.#observer.served(m.info, m.manifest.sha256, s.mean)
    }
  }

  scoreDecoded(image: DecodedImage, models: readonly NimaModel[], weights?: Weights): Promise<ImageScore> {
    return this.infer(this.prepare(image, models), models, weights)
  }

  /**
   * Decode (under the decode limit), preprocess and infer. `timings.decodeMs` is the
   * decode and preprocessing itself, not the wait for a slot.
   */
  async scoreBytes(bytes: Buffer, models: readonly NimaModel[], weights?: Weights, signal?: AbortSignal): Promise<ImageScore> {
    const header = await this.#readHeader(bytes).catch((err: unknown) => {
      this.#noteAbandoned('decode', err, signal)
      throw err
    })
    const score = async () => {
      // No local holds the decoded image across the inference await.
      const prepared = await this.#decodeInLane(bytes, models, header, signal).catch((err: unknown) => {
        this.#noteAbandoned('decode', err, signal)
        throw err
      })
      return this.infer(prepared, models, weights, signal)
    }
    // Large and other-format images are paced by the memory budget and the decode slots
    // already, and must not hold up ordinary photos: only the inline lane is admitted.
    return header.inline ? this.#admitted(models, signal, score) : score()
  }

  /**
   * Runs `score` once admitted: at most `pipelineImages` at once. Waiting for admission, an
   * image holds only its compressed bytes, so a backlog costs neither memory nor CPU per
   * image; past `maxWaiting` waiting, 503 at once.
   */
  async #admitted<T>(models: readonly NimaModel[], signal: AbortSignal | undefined, score: () => Promise<T>, waitingStage: DropStage = 'decode'): Promise<T> {
    const admission = this.#admission
    let waiting = admission.active >= admission.limit || admission.pending > 0
    if (waiting && admission.pending >= (this.#options.maxWaiting ?? NO_BUDGET)) {
      throw new NimaError('NIMA_OVERLOADED', `${admission.pending} images already wait to be scored (QUEUE_MAX)`, { headers: { 'retry-after': '1' } })
    }
    if (waiting) this.#countWaiting(models, 1)
    const waitSpan = waiting ? startSpan(SPAN.admissionWait, { 'nima.admission.ahead': admission.pending, 'nima.admission.limit': admission.limit }) : undefined
    const leaveLine = () => {
      if (!waiting) return
      waiting = false
      waitSpan?.end()
      this.#countWaiting(models, -1)
    }
    let started = false
    try {
      return await admission.run(() => {
        started = true
        leaveLine()
        return score()
      }, signal)
    } catch (err) {
      // Dropped before admission (the signal fired while it waited, or had already).
      if (!started) {
        leaveLine()
        this.#noteAbandoned(waitingStage, err, signal)
      }
      throw err
    }
  }

  /**
   * Scores for one tensor a client preprocessed itself (the Open Inference Protocol's FP32
   * input): no decode, but the same admission as a photo of the inline lane, since a
   * tensor waiting for its batch holds as much memory as a decoded one; then the model's
   * micro-batcher, as `infer` does. `tensor` is `model`'s input for one image, its values
   * already checked by the caller (tensorValueRange). With nothing to decode, a tensor
   * dropped while it waits for admission counts at stage 'queue', as one dropped in the batcher.
   */
  async scoreTensor(tensor: Float32Array, model: NimaModel, signal?: AbortSignal): Promise<ScoreSummary> {
    const size = tensorSize(model.tensorSpec)
    if (tensor.length !== size) throw new RangeError(`scoreTensor: model ${model.info.id} takes ${size} values per image, got ${tensor.length}`)
    const score = async () => {
      const distribution = await model.predict(tensor, signal).catch((err: unknown) => {
        this.#noteAbandoned('queue', err, signal)
        throw err
      })
      return summarize(distribution, model.manifest.output.scores.values)
    }
    return this.#admitted([model], signal, score, 'queue')
  }

  #countWaiting(models: readonly NimaModel[], delta: number): void {
    for (const m of models) this.#admissionWaiting.set(m.info.id, (this.#admissionWaiting.get(m.info.id) ?? 0) + delta)
  }

  /** Images waiting for `model`: for admission (as bytes) and in its batcher's queue. */
  queueDepthOf(model: NimaModel): number {
    return (this.#admissionWaiting.get(model.info.id) ?? 0) + model.queueDepth
  }

  /** Reports an image dropped at `stage` because its signal aborted (and nothing else). */
  #noteAbandoned(stage: DropStage, err: unknown, signal: AbortSignal | undefined): void {
    if (signal?.aborted && err === signal.reason) this.#observer.dropped?.(stage, err)
  }

  get queueDepth(): number {
    let n = 0
    for (const m of this.models.values()) n += this.queueDepthOf(m)
    return n
  }

  async drain(): Promise<void> {
    await Promise.all([...this.models.values()].map((m) => m.drain()))
  }

  #disposed = false

  /** True once `dispose` has run: its sessions and decode processes are released. */
  get disposed(): boolean {
    return this.#disposed
  }

  async dispose(): Promise<void> {
    if (this.#disposed) return
    this.#disposed = true
    await Promise.all([...this.models.values()].map((m) => m.dispose()))
    await this.#pool?.close()
  }
}

/** A decode's span: its lane, how long it waited for the lane's slot (and memory), what the image turned out to be. */
function tracedDecode(lane: 'inline' | 'process', bytes: Buffer, queuedAt: number, run: () => Promise<Prepared>): Promise<Prepared> {
  const attributes = () => ({ 'nima.decode.lane': lane, 'nima.decode.queued_ms': Math.round((performance.now() - queuedAt) * 1000) / 1000, 'nima.image.bytes': bytes.length })
  return traced(SPAN.decode, attributes, async (span) => {
    const prepared = await run()
    span?.setAttributes(imageAttributes(prepared.summary))
    return prepared
  })
}

function imageAttributes(image: { format: string; width: number; height: number }) {
  return { 'nima.image.format': image.format, 'nima.image.width': image.width, 'nima.image.height': image.height, 'nima.image.pixels': image.width * image.height }
}

/** One tensor per distinct model input (models sharing an input spec share it). */
function tensorsFor(models: readonly NimaModel[], pixelsFor: (spec: TensorSpec) => RgbImage, pool: TensorPool): Map<string, Float32Array> {
  const tensors = new Map<string, Float32Array>()
  for (const m of models) {
    if (tensors.has(m.inputKey)) continue
    const t = pool.take(tensorSize(m.tensorSpec))
    writeTensor(pixelsFor(m.tensorSpec), m.tensorSpec, t)
    tensors.set(m.inputKey, t)
  }
  return tensors
}
