/**
 * The combined score: a weighted mean of the models' mean scores,
 *   combined = Σ w_m · mean_m / Σ w_m   over the models that scored the image,
 * so it stays on the same 1..10 scale whatever subset of models ran. The weights reported
 * with it are the shares actually applied, w_m / Σ w: they sum to 1, so one model alone
 * shows weight 1 (its configured 0.4 would read as if 0.4 had been applied).
 */
export type Weights = Readonly<Record<string, number>>

export interface CombinedScore {
  score: number
  /** Each model's share of the score (sums to 1). */
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

/**
 * Weights as shares of their sum, the form every answer reports. All zero (or none
 * positive): equal shares, which is what `combine` then applies.
 */
export function normalizeWeights(weights: Readonly<Record<string, number>>): Record<string, number> {
  const ids = Object.keys(weights)
  const sum = ids.reduce((a, id) => a + weights[id]!, 0)
  return Object.fromEntries(ids.map((id) => [id, sum > 0 ? weights[id]! / sum : 1 / ids.length]))
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
  const shares = normalizeWeights(used)
  if (den <= 0) {
    // All weights zero: the plain mean rather than a division by zero.
    const vals = Object.values(means)
    return { score: vals.reduce((a, b) => a + b, 0) / Math.max(vals.length, 1), weights: shares }
  }
  return { score: num / den, weights: shares }
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
