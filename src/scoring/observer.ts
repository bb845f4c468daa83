import type { ProviderFailure } from '../inference/onnx-backend.js'
import type { ModelInfo } from '../models/model-pipeline.js'

/** Where an image's work was dropped because its signal aborted. */
export type DropStage = 'decode' | 'queue'

/**
 * What scoring reports as it works, as plain events. The service turns them into
 * Prometheus metrics (metrics/metrics.ts `scoringObserver`); the batch CLI and other
 * tools pass none, so scoring itself never touches a metrics registry. State that can be
 * read at any time (queue depths, images in flight, decode slots, the memory budget) is
 * not reported here: the metrics plugin reads it from the scorer at scrape time.
 */
export interface ScoringObserver {
  /** A model's session opened, after falling back past `fallbacks`. */
  loaded?(model: ModelInfo, fallbacks: readonly ProviderFailure[]): void
  /** One image decoded and its tensors written, in `seconds`. */
  decoded?(format: string, seconds: number): void
  /** One session.run of `size` images; how long each waited for it, and how long it ran. */
  batch?(model: ModelInfo, size: number, queueWaitSeconds: readonly number[], runSeconds: number): void
  /** An image's work left at `stage` because its request's signal aborted with `reason`. */
  dropped?(stage: DropStage, reason: unknown): void
  /**
   * A model's mean served to a client (fresh or from the score cache; once per distinct
   * image and request), with the sha256 of the model file that made it.
   */
  served?(model: ModelInfo, sha256: string, mean: number): void
}
