/** Statistics of a score distribution over bins with given values (NIMA: 1..10). */
export interface ScoreSummary {
  mean: number
  std: number
  distribution: number[]
}

/** Σ value_i · p_i: the score of a distribution; `values` absent, the bins are 1..K (NIMA's). */
export function meanOf(p: ArrayLike<number>, values?: ArrayLike<number>): number {
  let m = 0
  for (let i = 0; i < p.length; i++) m += p[i]! * (values ? values[i]! : i + 1)
  return m
}

export function stdOf(p: ArrayLike<number>, values: ArrayLike<number>, mean = meanOf(p, values)): number {
  let v = 0
  for (let i = 0; i < p.length; i++) v += p[i]! * (values[i]! - mean) ** 2
  return Math.sqrt(v)
}

export function summarize(p: ArrayLike<number>, values: ArrayLike<number>): ScoreSummary {
  if (p.length !== values.length) throw new RangeError(`distribution has ${p.length} bins, expected ${values.length}`)
  const mean = meanOf(p, values)
  return { mean, std: stdOf(p, values, mean), distribution: Array.from(p) }
}
