/**
 * Diversity-aware selection by maximal marginal relevance (Carbonell & Goldstein, 1998):
 * pick k items one at a time, each maximising
 *
 *   (1 − diversity) · relevance(c) − diversity · max over picked p of similarity(c, p)
 *
 * so that a photo nearly identical to one already picked loses to a slightly weaker but
 * different one. diversity 0 is the plain ranking; 1 ignores scores after the first pick.
 */
export const DEFAULT_DIVERSITY = 0.3

/** A combined score (NIMA means lie in 1..10) mapped onto 0..1, the scale of the similarity. */
export function relevance(combined: number): number {
  return Math.min(1, Math.max(0, (combined - 1) / 9))
}

/**
 * Indices of the first `k` picks by MMR, in pick order, over candidates given best first
 * (`relevances[i]`); equal MMR values go to the better-ranked candidate.
 */
export function selectMmr(relevances: readonly number[], similarity: (i: number, j: number) => number, k: number, diversity: number): number[] {
  if (!Number.isInteger(k) || k < 0) throw new RangeError(`selectMmr: k must be an integer ≥ 0, got ${k}`)
  if (!(diversity >= 0 && diversity <= 1)) throw new RangeError(`selectMmr: diversity must be in 0..1, got ${diversity}`)
  const n = relevances.length
  const picked: number[] = []
  const maxSim = new Float64Array(n)
  const taken = new Uint8Array(n)
  while (picked.length < Math.min(k, n)) {
    let best = -1
    let bestValue = -Infinity
    for (let i = 0; i < n; i++) {
      if (taken[i]) continue
      const value = (1 - diversity) * relevances[i]! - diversity * maxSim[i]!
      if (value > bestValue) {
        best = i
        bestValue = value
      }
    }
    taken[best] = 1
    picked.push(best)
    for (let i = 0; i < n; i++) if (!taken[i]) maxSim[i] = Math.max(maxSim[i]!, similarity(i, best))
  }
  return picked
}
