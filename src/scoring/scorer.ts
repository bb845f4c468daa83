import { NimaError } from '../errors.js'
import { decodeImage, type DecodedImage } from '../imaging/decode.js'
import { tensorSize, writeTensor } from '../imaging/tensor.js'
import type { Metrics } from '../metrics/metrics.js'
import { combine, resolveWeights, type CombinedScore, type Weights } from './combined.js'
import { summarize, type ScoreSummary } from './distribution.js'
import type { ModelInfo, NimaModel } from './nima-model.js'

export interface ImageSummary {
  id: string
  width: number
  height: number
  format: string
  bytes: number
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
}

/**
 * Bytes in, scores out: decode → one tensor per distinct input spec → every requested
 * model concurrently (each through its own micro-batcher) → statistics and combined score.
 */
export class Scorer {
  readonly models: ReadonlyMap<string, NimaModel>
  readonly #options: ScorerOptions
  readonly #metrics: Metrics

  constructor(models: ReadonlyMap<string, NimaModel>, options: ScorerOptions, metrics: Metrics) {
    this.models = models
    this.#options = options
    this.#metrics = metrics
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
    const summary = { id: image.id, width: image.width, height: image.height, format: image.format, bytes: image.bytes }
    return { summary, tensors, prepMs: performance.now() - started }
  }

  async infer(prepared: Prepared, models: readonly NimaModel[], weights?: Weights): Promise<ImageScore> {
    const t0 = performance.now()
    const dists = await Promise.all(models.map((m) => m.predict(prepared.tensors.get(m.inputKey)!)))
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
    const w = resolveWeights(models.map((m) => m.info), this.#options.defaultWeights, weights)
    return {
      image: prepared.summary,
      scores,
      combined: combine(means, w),
      models: info,
      timings: { decodeMs: prepared.prepMs, inferenceMs },
    }
  }

  scoreDecoded(image: DecodedImage, models: readonly NimaModel[], weights?: Weights): Promise<ImageScore> {
    return this.infer(this.prepare(image, models), models, weights)
  }

  async scoreBytes(bytes: Buffer, models: readonly NimaModel[], weights?: Weights): Promise<ImageScore> {
    const t0 = performance.now()
    // No local holds the decoded image across the inference await.
    const prepared = this.prepare(await this.decode(bytes), models)
    const decodeMs = performance.now() - t0
    const result = await this.infer(prepared, models, weights)
    result.timings.decodeMs = decodeMs
    return result
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
