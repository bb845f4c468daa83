/**
 * The combined score: a weighted mean of the models' mean scores,
 *   combined = Σ w_m · mean_m / Σ w_m   over the models that scored the image,
 * so it stays on the same 1..10 scale whatever subset of models ran.
 */
export type Weights = Readonly<Record<string, number>>

export interface CombinedScore {
  score: number
  weights: Record<string, number>
}

/**
 * Weight of each scored model: the request's value for its id, else the default for its
 * id, else the default for its task (so a fine-tuned `aesthetic-hotel` inherits the
 * aesthetic weight).
 */
export function resolveWeights(
  models: readonly { id: string; task: string }[],
  defaults: Weights,
  requested: Weights = {},
): Record<string, number> {
  const out: Record<string, number> = {}
  for (const m of models) out[m.id] = requested[m.id] ?? requested[m.task] ?? defaults[m.id] ?? defaults[m.task] ?? 1
  return out
}

export function combine(means: Readonly<Record<string, number>>, weights: Readonly<Record<string, number>>): CombinedScore {
  let num = 0
  let den = 0
  const used: Record<string, number> = {}
  for (const [id, mean] of Object.entries(means)) {
    const w = weights[id] ?? 0
    used[id] = w
    num += w * mean
    den += w
  }
  if (den <= 0) {
    // All weights zero: fall back to the plain mean rather than dividing by zero.
    const vals = Object.values(means)
    return { score: vals.reduce((a, b) => a + b, 0) / Math.max(vals.length, 1), weights: used }
  }
  return { score: num / den, weights: used }
}

/** The combined score of one image: each model's weight resolved as above, then `combine`. */
export function combinedScore(
  models: readonly { id: string; task: string }[],
  means: Readonly<Record<string, number>>,
  defaults: Weights,
  requested?: Weights,
): CombinedScore {
  return combine(means, resolveWeights(models, defaults, requested))
}
