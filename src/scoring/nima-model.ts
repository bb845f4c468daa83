import type { CatalogEntry } from '../models/catalog.js'
import type { ModelManifest } from '../models/manifest.js'
import { createBatcher, type Batcher } from '../inference/batcher.js'
import { openSession, type ModelSession, type SessionOptions } from '../inference/onnx-backend.js'
import { normalizationTable, tensorSize, type TensorSpec } from '../imaging/tensor.js'
import type { Metrics } from '../metrics/metrics.js'

export interface BatchOptions {
  maxBatchSize: number
  maxWaitMs: number
  maxQueue: number
}

export interface ModelInfo {
  id: string
  version: string
  task: ModelManifest['task']
  synthetic: boolean
  provider: string
}

/**
 * One loaded NIMA model: its manifest, ONNX session and micro-batcher. Takes
 * preprocessed tensors, returns score distributions.
 */
export class NimaModel {
  readonly manifest: ModelManifest
  readonly tensorSpec: TensorSpec
  /** Key shared by models that want identical input tensors, so one tensor serves both. */
  readonly inputKey: string
  readonly info: ModelInfo
  readonly #session: ModelSession
  readonly #batcher: Batcher<Float32Array, Float32Array>

  private constructor(entry: CatalogEntry, session: ModelSession, batch: BatchOptions, metrics: Metrics) {
    const m = entry.manifest
    this.manifest = m
    this.#session = session
    const { width, height, normalization, resize, fit } = m.input
    this.tensorSpec = { width, height, lut: normalizationTable(normalization.scale, normalization.offset) }
    this.inputKey = JSON.stringify([width, height, resize, fit, normalization.scale, normalization.offset])
    this.info = { id: m.id, version: m.version, task: m.task, synthetic: m.synthetic, provider: session.provider }
    const labels = { model: m.id, version: m.version, synthetic: String(m.synthetic), provider: session.provider }
    const perImage = tensorSize(this.tensorSpec)
    const bins = m.output.scores.bins
    this.#batcher = createBatcher<Float32Array, Float32Array>({
      ...batch,
      run: async (tensors) => {
        const n = tensors.length
        const input = n === 1 ? tensors[0]! : new Float32Array(n * perImage)
        if (n > 1) tensors.forEach((t, i) => input.set(t, i * perImage))
        const stop = metrics.inferenceDuration.startTimer(labels)
        const out = await session.run(input, [n, height, width, 3], [m.output.scores.name])
        stop()
        const scores = out[m.output.scores.name]!
        return tensors.map((_, i) => scores.slice(i * bins, (i + 1) * bins))
      },
      onBatch: ({ size, queueWaitMs }) => {
        metrics.batchSize.observe({ model: m.id }, size)
        for (const w of queueWaitMs) metrics.queueWait.observe({ model: m.id }, w / 1000)
        metrics.imagesScored.inc({ model: m.id, version: m.version, synthetic: String(m.synthetic) }, size)
      },
    })
  }

  static async load(entry: CatalogEntry, session: SessionOptions, batch: BatchOptions, metrics: Metrics): Promise<NimaModel> {
    const s = await openSession(entry.modelPath, entry.manifest.input.name, session)
    for (const f of s.fallbacks) metrics.providerFallbacks.inc({ model: entry.manifest.id, provider: f.provider })
    return new NimaModel(entry, s, batch, metrics)
  }

  get fallbacks() {
    return this.#session.fallbacks
  }

  get queueDepth(): number {
    return this.#batcher.queueDepth
  }

  get inFlight(): number {
    return this.#batcher.inFlight
  }

  /**
   * Distribution over the score bins for one preprocessed image. If `signal` has aborted
   * when the image's batch forms, the image is dropped unrun and this rejects with the
   * signal's reason; once its batch runs, it finishes.
   */
  predict(tensor: Float32Array, signal?: AbortSignal): Promise<Float32Array> {
    return this.#batcher.submit(tensor, signal)
  }

  /** One run at the largest batch size, so first requests do not pay for ORT's lazy set-up. */
  async warmUp(batchSize: number): Promise<void> {
    const n = Math.max(1, batchSize)
    const { width, height } = this.tensorSpec
    await this.#session.run(new Float32Array(n * tensorSize(this.tensorSpec)), [n, height, width, 3], [this.manifest.output.scores.name])
  }

  drain(): Promise<void> {
    return this.#batcher.drain()
  }

  dispose(): Promise<void> {
    return this.#session.dispose()
  }
}
