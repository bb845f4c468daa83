/**
 * Means, spreads and correlations over plain arrays, as pure functions: fine-tuning's
 * evaluation (src/finetune/math.ts) and `models check-preprocess` (src/scoring/preprocess-check.ts)
 * both measure agreement with them.
 */

/** Throws unless both have the same non-zero length. */
export function checkSameLength(p: ArrayLike<number>, q: ArrayLike<number>): void {
  if (p.length !== q.length || p.length === 0) throw new RangeError(`distributions must have the same non-zero length, got ${p.length} and ${q.length}`)
}

export function mean(xs: ArrayLike<number>): number {
  if (xs.length === 0) return NaN
  let s = 0
  for (let i = 0; i < xs.length; i++) s += xs[i]!
  return s / xs.length
}

/** Population standard deviation (divides by n). */
export function std(xs: ArrayLike<number>): number {
  const m = mean(xs)
  let v = 0
  for (let i = 0; i < xs.length; i++) v += (xs[i]! - m) ** 2
  return Math.sqrt(v / xs.length)
}

/** Pearson's linear correlation coefficient; NaN when either side is constant. */
export function pearson(x: ArrayLike<number>, y: ArrayLike<number>): number {
  checkSameLength(x, y)
  const mx = mean(x)
  const my = mean(y)
  let sxy = 0
  let sxx = 0
  let syy = 0
  for (let i = 0; i < x.length; i++) {
    const dx = x[i]! - mx
    const dy = y[i]! - my
    sxy += dx * dy
    sxx += dx * dx
    syy += dy * dy
  }
  if (sxx === 0 || syy === 0) return NaN
  return sxy / Math.sqrt(sxx * syy)
}

/** Ranks 1..n, tied values sharing the average of the ranks they span (fractional ranking). */
export function rankWithTies(xs: ArrayLike<number>): Float64Array {
  const n = xs.length
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => xs[a]! - xs[b]!)
  const ranks = new Float64Array(n)
  let i = 0
  while (i < n) {
    let j = i
    while (j + 1 < n && xs[order[j + 1]!]! === xs[order[i]!]!) j++
    const avg = (i + j) / 2 + 1
    for (let k = i; k <= j; k++) ranks[order[k]!] = avg
    i = j + 1
  }
  return ranks
}

/** Spearman's rank correlation: Pearson of the tie-averaged ranks (exact with ties). */
export function spearman(x: ArrayLike<number>, y: ArrayLike<number>): number {
  checkSameLength(x, y)
  return pearson(rankWithTies(x), rankWithTies(y))
}
