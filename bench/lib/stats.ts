/** Small statistics helpers: percentiles over raw samples, rates, rounding for reports. */

export interface LatencySummary {
  count: number
  meanMs: number
  p50Ms: number
  p95Ms: number
  p99Ms: number
  maxMs: number
}

/** Nearest-rank percentile of an ascending array (q in 0..100). */
export function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return Number.NaN
  const rank = Math.ceil((q / 100) * sorted.length)
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!
}

export function summarize(samples: readonly number[]): LatencySummary {
  const sorted = [...samples].sort((a, b) => a - b)
  const sum = sorted.reduce((s, x) => s + x, 0)
  return {
    count: sorted.length,
    meanMs: sorted.length > 0 ? sum / sorted.length : Number.NaN,
    p50Ms: percentile(sorted, 50),
    p95Ms: percentile(sorted, 95),
    p99Ms: percentile(sorted, 99),
    maxMs: sorted.length > 0 ? sorted[sorted.length - 1]! : Number.NaN,
  }
}

export function median(samples: readonly number[]): number {
  return percentile([...samples].sort((a, b) => a - b), 50)
}

/** Rounds for human tables and JSON alike (keeps JSON diffs readable). */
export function round(x: number, digits = 1): number {
  if (!Number.isFinite(x)) return x
  const f = 10 ** digits
  return Math.round(x * f) / f
}

/** Rate bound of stages that each need the whole machine: 1 / Σ (1 / rateᵢ). */
export function serialBound(rates: readonly number[]): number {
  return 1 / rates.reduce((s, r) => s + 1 / r, 0)
}
