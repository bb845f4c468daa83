/**
 * Drift as the one-sample Kolmogorov–Smirnov statistic: the largest vertical gap between
 * the empirical distribution of recent scores and the calibration catalogue's (read from
 * its quantile table),
 *
 *   D = sup_x | F_recent(x) − F_catalogue(x) |,   0 (same distribution) … 1 (no overlap).
 *
 * D reads as "the largest share of photos that moved across some score threshold": 0.25
 * means that for some score s, the share of recent photos below s differs from the
 * catalogue's by 25 points. It is scale-free (a shift of the scores and a change of their
 * spread both show) and needs no binning. With n recent scores and a catalogue drawn from
 * the same distribution, D is about 0.87/√n on average and exceeds 1.63/√n 1 % of the
 * time (Kolmogorov's limit law), which is why a window of a few hundred scores is needed
 * before small values mean anything.
 */
import { cdfAt } from './quantiles.js'

/** D between `sample` (any order, at least one value) and the table's distribution. */
export function ksStatistic(sample: readonly number[], table: readonly number[]): number {
  const n = sample.length
  if (n === 0) throw new RangeError('ksStatistic: empty sample')
  const sorted = [...sample].sort((a, b) => a - b)
  let d = 0
  // The sample's CDF is a step function and the table's is continuous but for atoms, so
  // the supremum is reached at a sample point, just before it or at it.
  for (let i = 0; i < n; ) {
    const x = sorted[i]!
    let j = i
    while (j < n && sorted[j] === x) j++
    const { below, atOrBelow } = cdfAt(table, x)
    d = Math.max(d, Math.abs(i / n - below), Math.abs(j / n - atOrBelow))
    i = j
  }
  return d
}
