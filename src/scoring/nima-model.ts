import type { CatalogEntry } from '../models/catalog.js'
import type { ModelManifest } from '../models/manifest.js'
import { createBatcher, type Batcher } from '../inference/batcher.js'
import type { SessionOptions } from '../inference/onnx-backend.js'
import type { TensorSpec } from '../imaging/tensor.js'
import type { ScoringObserver } from './observer.js'
import { ManifestModel, type ModelInfo } from '../models/model-pipeline.js'
import type { Head } from '../models/head.js'
import { recordBatch } from '../util/tracing.js'

export interface BatchOptions {
  maxBatchSize: number
  maxWaitMs: number
  maxQueue: number
}

export interface ExplainRun {
  run(tensor: Float32Array): Promise<Record<'scores' | 'featureMap', Float32Array>>
  head(): Promise<Head>
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
  readonly #model: ManifestModel
  readonly #batcher: Batcher<Float32Array, Float32Array>

  private constructor(model: ManifestModel, batch: BatchOptions, observer: ScoringObserver) {
    const m = model.manifest
    this.manifest = m
    this.#model = model
    this.tensorSpec = model.spec
    this.inputKey = model.inputKey
    this.info = model.info
    const perImage = model.tensorSize
    const bins = m.output.scores.bins
    // session.run alone (not the batch assembly): what nima_inference_duration_seconds has always timed.
    let runSeconds = 0
    // One batch runs at a time, so one buffer serves every batch. Shared memory: a session
    // on a worker thread reads it where it is, with no copy per batch to allocate and
    // collect on either side.
    const batchInput = new Float32Array(new SharedArrayBuffer(batch.maxBatchSize * perImage * Float32Array.BYTES_PER_ELEMENT))
    this.#batcher = createBatcher<Float32Array, Float32Array>({
      ...batch,
      run: async (tensors) => {
        const n = tensors.length
        tensors.forEach((t, i) => batchInput.set(t, i * perImage))
        const input = batchInput.subarray(0, n * perImage)
        const started = performance.now()
        const { scores } = await model.run(input, n)
        runSeconds = (performance.now() - started) / 1000
        return tensors.map((_, i) => scores.slice(i * bins, (i + 1) * bins))
      },
      onBatch: ({ size, queueWaitMs, startedAt, endedAt, traced }) => {
        observer.batch?.(
          this.info,
          size,
          queueWaitMs.map((w) => w / 1000),
          runSeconds,
        )
        if (traced.length > 0) recordBatch(this.info.id, this.#spanAttributes(size), traced, startedAt, endedAt)
      },
    })
  }

  static async load(entry: CatalogEntry, session: SessionOptions, batch: BatchOptions, observer: ScoringObserver = {}): Promise<NimaModel> {
    const model = new NimaModel(await ManifestModel.open(entry.modelPath, entry.manifest, session), batch, observer)
    observer.loaded?.(model.info, model.fallbacks)
    return model
  }

  #spanAttributes(batchSize: number) {
    const { id, version, provider, synthetic } = this.info
    return { 'nima.model.id': id, 'nima.model.version': version, 'nima.model.provider': provider, 'nima.model.synthetic': synthetic, 'nima.batch.size': batchSize }
  }

  get fallbacks() {
    return this.#model.fallbacks
  }

  get threadId(): number | undefined {
    return this.#model.threadId
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

  /**
   * One image's distribution and last feature map, for /explain: run directly, outside
   * the micro-batcher, so /score batches never carry the feature map. Undefined when the
   * model file predates the feature-map output.
   */
  explainer(): ExplainRun | undefined {
    const model = this.#model
    if (!model.hasOutput('featureMap')) return undefined
    return { run: (tensor) => model.run(tensor, 1, ['scores', 'featureMap']), head: () => model.head() }
  }

  /** One run at the largest batch size, so first requests do not pay for ORT's lazy set-up. */
  async warmUp(batchSize: number): Promise<void> {
    const n = Math.max(1, batchSize)
    await this.#model.run(this.#model.batchBuffer(n), n)
  }

  drain(): Promise<void> {
    return this.#batcher.drain()
  }

  dispose(): Promise<void> {
    return this.#model.dispose()
  }
}
