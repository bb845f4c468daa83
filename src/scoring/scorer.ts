import { availableParallelism } from 'node:os'
import { NimaError } from '../errors.js'
import { decodeImage, type DecodedImage } from '../imaging/decode.js'
import { phash } from '../imaging/phash.js'
import { tensorSize, writeTensor } from '../imaging/tensor.js'
import type { AbandonStage, Metrics } from '../metrics/metrics.js'
import { createLimiter, type Limiter } from '../util/limiter.js'
import { combinedScore, type CombinedScore, type Weights } from './combined.js'
import { isClientGone } from '../http/request-lifecycle.js'
import { summarize, type ScoreSummary } from './distribution.js'
import type { ModelInfo, NimaModel } from './nima-model.js'

export interface ImageSummary {
  id: string
  width: number
  height: number
  format: string
  bytes: number
  /** 64-bit perceptual hash, 16 hex digits (src/imaging/phash.ts): near-duplicate grouping. */
  phash: string
}

export interface ImageScore {
  image: ImageSummary
  scores: Record<string, ScoreSummary>
  combined: CombinedScore
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
}

/**
 * Bytes in, scores out: decode (at most `decodeConcurrency` at once) → one tensor per
 * distinct input spec → every requested model concurrently (each through its own
 * micro-batcher) → statistics and combined score.
 *
 * `scoreBytes` takes an AbortSignal: an image still waiting for a decode slot or for its
 * batch when the signal fires is dropped there and the call rejects with the signal's
 * reason. Drops whose reason is a ClientGoneError count in nima_abandoned_total.
 */
export class Scorer {
  readonly models: ReadonlyMap<string, NimaModel>
  readonly #options: ScorerOptions
  readonly #metrics: Metrics
  readonly #decodeSlots: Limiter

  constructor(models: ReadonlyMap<string, NimaModel>, options: ScorerOptions, metrics: Metrics) {
    const decodeConcurrency = options.decodeConcurrency ?? 0
    if (!Number.isInteger(decodeConcurrency) || decodeConcurrency < 0) {
      throw new RangeError(`Scorer: decodeConcurrency must be an integer ≥ 0 (0 = os.availableParallelism()), got ${String(options.decodeConcurrency)}`)
    }
    this.models = models
    this.#options = options
    this.#metrics = metrics
    this.#decodeSlots = createLimiter(decodeConcurrency === 0 ? availableParallelism() : decodeConcurrency)
  }

  /** Decodes running (`running`) and waiting for a slot (`waiting`) in `scoreBytes`, and the limit. */
  get decodes(): { running: number; waiting: number; limit: number } {
    const slots = this.#decodeSlots
    return { running: slots.active, waiting: slots.pending, limit: slots.limit }
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

  async decode(bytes: Buffer): Promise<DecodedImage> {
    const started = performance.now()
    const decoded = await decodeImage(bytes, { maxInputPixels: this.#options.maxInputPixels })
    this.#metrics.decodeDuration.observe({ format: decoded.format }, (performance.now() - started) / 1000)
    return decoded
  }

  /**
   * Synchronous half of scoring: the tensors each requested model needs (one per
   * distinct input spec) and the image summary. After this the full-resolution pixels
   * are no longer needed, so callers that drop their reference free them before inference.
   */
  prepare(image: DecodedImage, models: readonly NimaModel[]): Prepared {
    const started = performance.now()
    const tensors = new Map<string, Float32Array>()
    for (const m of models) {
      if (tensors.has(m.inputKey)) continue
      const t = new Float32Array(tensorSize(m.tensorSpec))
      writeTensor(image, m.tensorSpec, t)
      tensors.set(m.inputKey, t)
    }
    const summary = { id: image.id, width: image.width, height: image.height, format: image.format, bytes: image.bytes, phash: phash(image) }
    return { summary, tensors, prepMs: performance.now() - started }
  }

  /** Runs the prepared tensors through `models`; see the class comment for `signal`. */
  async infer(prepared: Prepared, models: readonly NimaModel[], weights?: Weights, signal?: AbortSignal): Promise<ImageScore> {
    const t0 = performance.now()
    const dists = await Promise.all(models.map((m) => m.predict(prepared.tensors.get(m.inputKey)!, signal))).catch((err: unknown) => {
      this.#noteAbandoned('queue', err, signal)
      throw err
    })
    const inferenceMs = performance.now() - t0
    const scores: Record<string, ScoreSummary> = {}
    const means: Record<string, number> = {}
    const info: Record<string, ModelInfo> = {}
    models.forEach((m, i) => {
      const s = summarize(dists[i]!, m.manifest.output.scores.values)
      scores[m.info.id] = s
      means[m.info.id] = s.mean
      info[m.info.id] = m.info
    })
    return {
      image: prepared.summary,
      scores,
      combined: combinedScore(models.map((m) => m.info), means, this.#options.defaultWeights, weights),
      models: info,
      timings: { decodeMs: prepared.prepMs, inferenceMs },
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
    let decodeMs = 0
    // No local holds the decoded image across the inference await.
    const prepared = await this.#decodeSlots
      .run(async () => {
        const t0 = performance.now()
        const p = this.prepare(await this.decode(bytes), models)
        decodeMs = performance.now() - t0
        return p
      }, signal)
      .catch((err: unknown) => {
        this.#noteAbandoned('decode', err, signal)
        throw err
      })
    const result = await this.infer(prepared, models, weights, signal)
    result.timings.decodeMs = decodeMs
    return result
  }

  /** Counts an image dropped at `stage` because its client went away (and nothing else). */
  #noteAbandoned(stage: AbandonStage, err: unknown, signal: AbortSignal | undefined): void {
    if (signal?.aborted && err === signal.reason && isClientGone(err)) this.#metrics.abandoned.inc({ stage })
  }

  get queueDepth(): number {
    let n = 0
    for (const m of this.models.values()) n += m.queueDepth
    return n
  }

  async drain(): Promise<void> {
    await Promise.all([...this.models.values()].map((m) => m.drain()))
  }

  async dispose(): Promise<void> {
    await Promise.all([...this.models.values()].map((m) => m.dispose()))
  }
}
