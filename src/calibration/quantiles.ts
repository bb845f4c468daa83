/**
 * A catalogue's score distribution as a quantile table, and a score's percentile in it.
 *
 * The table holds the scores at the probabilities 0, 1/S, 2/S … 1 (S = QUANTILE_STEPS:
 * a percentile read from it is good to 100/S = 0.1 points), taken from the catalogue's
 * empirical distribution with Hazen's plotting positions: the i-th smallest of n scores
 * sits at p = (i − ½)/n, and between two neighbours p moves linearly. So a photo of the
 * catalogue gets back about the share of the catalogue below it, ties counting half,
 * whatever the catalogue's size, and the table's size does not grow with it.
 */

/** Steps of the quantile table: S + 1 values, a percentile resolved to 100/S points. */
export const QUANTILE_STEPS = 1000

/** The score at probability p (0..1) of the sorted sample, by Hazen's positions. */
function hazenQuantile(sorted: readonly number[], p: number): number {
  const n = sorted.length
  const h = p * n - 0.5 // 0-based fractional index
  if (h <= 0) return sorted[0]!
  if (h >= n - 1) return sorted[n - 1]!
  const lo = Math.floor(h)
  return sorted[lo]! + (h - lo) * (sorted[lo + 1]! - sorted[lo]!)
}

/**
 * The quantile table of `values`: `steps + 1` non-decreasing scores, the first the
 * smallest value, the last the largest. Throws on an empty or non-finite sample.
 */
export function quantileTable(values: readonly number[], steps = QUANTILE_STEPS): number[] {
  if (values.length === 0) throw new RangeError('quantileTable: no values')
  if (!Number.isInteger(steps) || steps < 1) throw new RangeError(`quantileTable: steps must be an integer ≥ 1, got ${steps}`)
  for (const v of values) if (!Number.isFinite(v)) throw new RangeError(`quantileTable: non-finite value ${v}`)
  const sorted = [...values].sort((a, b) => a - b)
  return Array.from({ length: steps + 1 }, (_, k) => hazenQuantile(sorted, k / steps))
}

/** Checks what a table read from a file must be: at least two values, finite, non-decreasing. */
export function checkTable(table: readonly number[]): string | undefined {
  if (table.length < 2) return `has ${table.length} values, at least 2 expected`
  for (let k = 0; k < table.length; k++) {
    if (!Number.isFinite(table[k])) return `value ${k} is not a finite number`
    if (k > 0 && table[k]! < table[k - 1]!) return `is not sorted (value ${k} is below value ${k - 1})`
  }
  return undefined
}

/** First index k with table[k] > x (table.length when none): a binary search. */
function upperBound(table: readonly number[], x: number): number {
  let lo = 0
  let hi = table.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (table[mid]! > x) hi = mid
    else lo = mid + 1
  }
  return lo
}

/** First index k with table[k] >= x. */
function lowerBound(table: readonly number[], x: number): number {
  let lo = 0
  let hi = table.length
  while (lo < hi) {
    const mid = (lo + hi) >>> 1
    if (table[mid]! >= x) hi = mid
    else lo = mid + 1
  }
  return lo
}

/**
 * The table's cumulative distribution at x, as the pair (F(x⁻), F(x)) in 0..1: equal where
 * the table rises through x, apart where x is a run of equal quantiles (an atom: many
 * catalogue photos with that very score, or the catalogue's minimum or maximum).
 */
export function cdfAt(table: readonly number[], x: number): { below: number; atOrBelow: number } {
  const steps = table.length - 1
  const first = lowerBound(table, x)
  const after = upperBound(table, x)
  if (first < after) {
    // x equals table[first..after-1]: the CDF, linear between the steps, jumps there from
    // first/S to (after-1)/S.
    return { below: first / steps, atOrBelow: (after - 1) / steps }
  }
  if (after === 0) return { below: 0, atOrBelow: 0 }
  if (after === table.length) return { below: 1, atOrBelow: 1 }
  const a = table[after - 1]!
  const b = table[after]!
  const p = (after - 1 + (x - a) / (b - a)) / steps
  return { below: p, atOrBelow: p }
}

/**
 * The percentile (0..100) of score x in the table's catalogue: the share of the catalogue
 * scoring below x, interpolated between the table's steps; a score the table holds as a
 * run of equal values gets the middle of that run (ties count half). Below the smallest
 * catalogue score 0, above the largest 100.
 */
export function percentileOf(table: readonly number[], x: number): number {
  if (Number.isNaN(x)) throw new RangeError('percentileOf: x is NaN')
  const { below, atOrBelow } = cdfAt(table, x)
  return (100 * (below + atOrBelow)) / 2
}
