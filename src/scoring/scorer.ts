import { NimaError } from '../errors.js'
import { ImageAdmission, type AdmissionOptions, type Admitted } from '../imaging/admission.js'
import type { Preprocess } from '../imaging/preprocess.js'
import type { DecodedSummary } from '../imaging/sampled-decode.js'
import { tensorSize, writeTensor, type RgbImage, type TensorSpec } from '../imaging/tensor.js'
import { TensorPool } from '../imaging/tensor-pool.js'
import type { DropStage, ScoringObserver } from './observer.js'
import { createLimiter, type Limiter } from '../util/limiter.js'
import type { BoundCalibration, CalibratedFields } from '../calibration/bound-calibration.js'
import { SPAN, startSpan } from '../util/tracing.js'
import { combinedScore, type CombinedScore, type Weights } from './combined.js'
import { summarize, type ScoreSummary } from './distribution.js'
import type { ModelInfo } from '../models/model-pipeline.js'
import type { NimaModel } from './nima-model.js'

/** What scoring reports of an image: a decode's summary (src/imaging/sampled-decode.ts) or the score cache's. */
export interface ImageSummary extends Omit<DecodedSummary, 'format'> {
  format: string
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
  /** The display copy, when asked for (`prepareBytes` with `preview`). */
  preview?: RgbImage
}

/**
 * The image admission's settings (src/imaging/admission.ts: header limits, memory budget,
 * lanes, decode processes) and the scoring pipeline's own.
 */
export interface ScorerOptions extends AdmissionOptions {
  defaultModels: readonly string[]
  defaultWeights: Weights
  /**
   * Ordinary photos (the inline lane) `scoreBytes` holds between admission and their
   * scores (decoding, waiting for a batch, inferring); later ones wait in arrival order as
   * the bytes they arrived as. Large images are paced by the memory budget and decode
   * slots instead. Default: no limit. See pipelineImagesFor.
   */
  pipelineImages?: number
  /** Images waiting for admission before `scoreBytes` refuses with 503 NIMA_OVERLOADED. Default: no limit. */
  maxWaiting?: number
  /** PREPROCESS (src/imaging/preprocess.ts): how every decode of this scorer makes the models' pixels. Default 'exact'. */
  preprocess?: Preprocess
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
const MAX_POOLED_TENSORS = 64

/**
 * Bytes in, scores out: the image admission (header, memory budget, lanes, decode
 * processes; src/imaging/admission.ts) → one tensor per distinct input spec → every
 * requested model concurrently (each through its own micro-batcher) → statistics and
 * combined score.
 *
 * `scoreBytes` takes an AbortSignal: an image still waiting for a decode slot or for its
 * batch when the signal fires is dropped there and the call rejects with the signal's
 * reason; the observer hears of each drop and its stage (the service counts client-gone ones).
 */
export class Scorer {
  readonly models: ReadonlyMap<string, NimaModel>
  readonly #options: ScorerOptions
  readonly #observer: ScoringObserver
  /** The one way from bytes to pixels; the scorer's decodes, and those it does for others. */
  readonly admission: ImageAdmission
  readonly #admission: Limiter
  /** Images waiting for admission, by the model ids they asked for (nima_queue_depth). */
  readonly #admissionWaiting = new Map<string, number>()
  readonly #tensors: TensorPool
  #calibration: BoundCalibration | undefined

  constructor(models: ReadonlyMap<string, NimaModel>, options: ScorerOptions, observer: ScoringObserver = {}) {
    this.admission = new ImageAdmission(options)
    this.models = models
    this.#options = options
    this.#observer = observer
    this.#admission = createLimiter(options.pipelineImages ?? NO_BUDGET)
    // Enough idle tensors for every admitted image and every decode in flight; more are
    // only held after a burst of large images, and those are left to the collector.
    this.#tensors = new TensorPool(Math.min(MAX_POOLED_TENSORS, (options.pipelineImages ?? 0) + 2 * this.admission.decodes.limit))
  }

  /** The deployment's preprocessing (PREPROCESS): every image this scorer decodes uses it, and the score cache keys carry it. */
  get preprocess(): Preprocess {
    return this.#options.preprocess ?? 'exact'
  }

  /** Decodes running (`running`) and waiting for a slot (`waiting`), both lanes, and the limit. */
  get decodes(): { running: number; waiting: number; limit: number } {
    return this.admission.decodes
  }

  /** Estimated bytes held by decodes in flight, decodes waiting for memory, and the budget. */
  get decodeMemory(): { usedBytes: number; waiting: number; budgetBytes: number } {
    return this.admission.decodeMemory
  }

  /** Decode processes (process isolation only): decodes killed on timeout, processes that died mid-decode. */
  get decodeProcesses(): { size: number; busy: number; timeouts: number; crashes: number; recycled: number } | undefined {
    return this.admission.decodeProcesses
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

  /**
   * The header admission for a decode that gives each distinct input size of `models` (and
   * the display copy `preview`) under `preprocess`: its cost and lane depend on it.
   */
  #admit(bytes: Buffer, models: readonly NimaModel[], preprocess = this.preprocess, preview?: number): Promise<Admitted> {
    const sizes = [...new Map(models.map((m) => [`${m.tensorSpec.width}x${m.tensorSpec.height}`, [m.tensorSpec.width, m.tensorSpec.height] as const])).values()]
    return this.admission.admit(bytes, { sizes, preprocess, ...(preview !== undefined ? { preview } : {}) })
  }

  /**
   * The decode in the image's lane (src/imaging/admission.ts), then one tensor per
   * distinct model input from the samples it sent back. Sampling is idempotent
   * (tensor.ts sampleNearest), so these are the tensors the full-resolution pixels give,
   * value for value. `prepMs` covers the decode and the tensors, not the wait.
   */
  async #prepare(admitted: Admitted, models: readonly NimaModel[], signal: AbortSignal | undefined): Promise<Prepared> {
    const { sizes } = admitted.request
    const decoded = await this.admission.decode(admitted, signal)
    this.#observer.decoded?.(decoded.image.format, decoded.decodeMs / 1000)
    const started = performance.now()
    const tensors = tensorsFor(models, (spec) => decoded.samples[sizes.findIndex(([w, h]) => w === spec.width && h === spec.height)]!, this.#tensors)
    const prepared: Prepared = { summary: decoded.image, tensors, prepMs: decoded.decodeMs + performance.now() - started }
    if (decoded.preview) prepared.preview = decoded.preview
    return prepared
  }

  /**
   * The image's summary (id, format, size, perceptual hash) through the same admission and
   * decoding as scoring (header limits, memory budget, decode slot, decode process), with
   * no tensors and no inference: for routes that store images rather than score them.
   */
  async inspect(bytes: Buffer, signal?: AbortSignal): Promise<ImageSummary> {
    // A fast decode's size follows the model inputs, and the hashes read its pixels: decode
    // as scoring does, so the hashes match those stored with the scores (the tensors go unused).
    const models = this.preprocess === 'exact' ? [] : [...this.models.values()]
    try {
      const prepared = await this.#prepare(await this.#admit(bytes, models), models, signal)
      for (const t of prepared.tensors.values()) this.#tensors.give(t)
      return prepared.summary
    } catch (err) {
      this.#noteAbandoned('decode', err, signal)
      throw err
    }
  }

  /**
   * Header admission, decode and tensors as `scoreBytes` does them, without inference:
   * for /explain, which runs the models itself with the feature map (one image, outside
   * the batches, so outside the pipeline admission too). `preview`: also a display copy
   * of the decoded photo, longest side in pixels (the overlay's photo, from the same decode).
   */
  async prepareBytes(bytes: Buffer, models: readonly NimaModel[], signal?: AbortSignal, preview?: number): Promise<Prepared> {
    try {
      return await this.#prepare(await this.#admit(bytes, models, this.preprocess, preview), models, signal)
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

  /**
   * Decode (under the decode limit), preprocess and infer. `timings.decodeMs` is the
   * decode and preprocessing itself, not the wait for a slot. `preprocess`: the
   * deployment's unless a tool compares both (`models check-preprocess`).
   */
  async scoreBytes(bytes: Buffer, models: readonly NimaModel[], weights?: Weights, signal?: AbortSignal, preprocess = this.preprocess): Promise<ImageScore> {
    const admitted = await this.#admit(bytes, models, preprocess).catch((err: unknown) => {
      this.#noteAbandoned('decode', err, signal)
      throw err
    })
    const score = async () => {
      // No local holds the decoded image across the inference await.
      const prepared = await this.#prepare(admitted, models, signal).catch((err: unknown) => {
        this.#noteAbandoned('decode', err, signal)
        throw err
      })
      return this.infer(prepared, models, weights, signal)
    }
    // Large and other-format images are paced by the memory budget and the decode slots
    // already, and must not hold up ordinary photos: only the inline lane is admitted.
    return admitted.inline ? this.#admitted(models, signal, score) : score()
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
    await this.admission.close()
  }
}

/** A decode's span: its lane, how long it waited for the lane's slot (and memory), what the image turned out to be. */
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
