/**
 * One image → per model its distribution and score map (and on request the logit maps):
 * the scorer's admission, decode and tensors, then each model run once with its feature
 * map, directly rather than through the micro-batcher (nima-model.ts `explainer`). The
 * overlay's photo (`preview`) comes from that same decode.
 */
import { NimaError } from '../errors.js'
import type { RgbImage } from '../imaging/tensor.js'
import { summarize, type ScoreSummary } from './distribution.js'
import type { ModelInfo } from '../models/model-pipeline.js'
import type { NimaModel } from './nima-model.js'
import { gridRows, logitMaps, scoreMap, type GridShape } from './score-map.js'
import type { ImageSummary, Scorer } from './scorer.js'

export interface ModelExplanation {
  model: ModelInfo
  score: ScoreSummary
  grid: { height: number; width: number; cellPixels: { x: number; y: number } }
  /** S(y,x) rows, top to bottom. */
  scoreMap: number[][]
  /** Largest |S| on the grid: the colour scale's half-range. */
  maxAbs: number
  /** Mᵢ(y,x) per bin, in the order of the score values; only when asked for. */
  logitMaps?: number[][][]
  /** bᵢ per bin, so that mean(Mᵢ) + bᵢ = zᵢ can be checked by the client. */
  bias?: number[]
}

export interface Explanation {
  image: ImageSummary
  explanations: Record<string, ModelExplanation>
  timings: { decodeMs: number; inferenceMs: number }
}

/** An explanation, and the photo at display size when it was asked for (`preview`). */
export interface Explained {
  explanation: Explanation
  preview: RgbImage | undefined
}

/** The models' explainers, or 409 naming the first model whose file lacks the feature map. */
function explainers(models: readonly NimaModel[]) {
  return models.map((m) => {
    const run = m.explainer()
    if (run) return run
    const { id, version, synthetic } = m.info
    const how = synthetic
      ? 'run `npx nima-serve models ensure` to regenerate outdated synthetic models'
      : 'install it again with `npx nima-serve models pull` or `models import` (the conversion now writes the feature map)'
    throw new NimaError(
      'NIMA_EXPLANATION_UNAVAILABLE',
      `model ${id}/${version} was built before the feature-map output existed, so it cannot be explained; ${how}, then restart or reload the service`,
    )
  })
}

export async function explainBytes(
  scorer: Scorer,
  bytes: Buffer,
  models: readonly NimaModel[],
  options: { logits?: boolean; signal?: AbortSignal; preview?: number } = {},
): Promise<Explained> {
  const runs = explainers(models)
  const prepared = await scorer.prepareBytes(bytes, models, options.signal, options.preview)
  const started = performance.now()
  const outputs = await Promise.all(models.map((m, i) => Promise.all([runs[i]!.run(prepared.tensors.get(m.inputKey)!), runs[i]!.head()])))
  const inferenceMs = performance.now() - started
  const explanations: Record<string, ModelExplanation> = {}
  models.forEach((m, i) => {
    const [{ scores, featureMap }, head] = outputs[i]!
    const fm = m.manifest.output.featureMap!
    const shape: GridShape = { channels: fm.channels, height: fm.height, width: fm.width }
    const values = m.manifest.output.scores.values
    const maps = logitMaps(featureMap, shape, head)
    const s = scoreMap(maps, scores, values)
    const input = m.manifest.input
    explanations[m.info.id] = {
      model: m.info,
      score: summarize(scores, values),
      grid: { height: fm.height, width: fm.width, cellPixels: { x: input.width / fm.width, y: input.height / fm.height } },
      scoreMap: gridRows(s, fm.width),
      maxAbs: s.reduce((a, v) => Math.max(a, Math.abs(v)), 0),
      ...(options.logits ? { logitMaps: maps.map((g) => gridRows(g, fm.width)), bias: Array.from(head.bias) } : {}),
    }
  })
  return { explanation: { image: prepared.summary, explanations, timings: { decodeMs: prepared.prepMs, inferenceMs } }, preview: prepared.preview }
}
