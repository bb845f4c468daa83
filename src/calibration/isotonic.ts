/**
 * Isotonic regression: the non-decreasing function of x closest to y in weighted least
 * squares, fitted by pool-adjacent-violators (Ayer et al. 1955; Barlow et al. 1972).
 * Written here rather than taken from a library: it is the heart of the rater map and a
 * few dozen lines, and no npm package for it turned up (searched for "isotonic").
 *
 * Used to map a model's mean score onto the raters' scale: monotone, so the order of
 * photos is kept (ties may appear where the raters saw no difference), and free of any
 * assumed shape (NIMA means crowd into 4–7 while raters use the whole scale).
 */

/** A fitted map: knots (x ascending, y non-decreasing); linear between them, flat beyond. */
export interface IsotonicMap {
  x: number[]
  y: number[]
}

export interface Point {
  x: number
  y: number
  /** Default 1. */
  weight?: number
}

/**
 * Fits the map. Points with equal x are pooled first (their weighted mean y), then
 * adjacent blocks whose means decrease are merged until none do. Each block keeps its
 * smallest and largest x as knots, so predictions interpolate between blocks (as
 * scikit-learn's IsotonicRegression does) rather than stepping.
 */
export function fitIsotonic(points: readonly Point[]): IsotonicMap {
  if (points.length === 0) throw new RangeError('fitIsotonic: no points')
  for (const p of points) {
    if (!Number.isFinite(p.x) || !Number.isFinite(p.y)) throw new RangeError(`fitIsotonic: non-finite point (${p.x}, ${p.y})`)
    if (p.weight !== undefined && !(p.weight > 0 && Number.isFinite(p.weight))) throw new RangeError(`fitIsotonic: weight must be positive, got ${p.weight}`)
  }
  const sorted = [...points].sort((a, b) => a.x - b.x)
  // Blocks as parallel stacks: weighted sum of y, total weight, smallest and largest x.
  const sum: number[] = []
  const w: number[] = []
  const lo: number[] = []
  const hi: number[] = []
  for (const p of sorted) {
    const weight = p.weight ?? 1
    const top = sum.length - 1
    if (top >= 0 && hi[top] === p.x) {
      sum[top]! += weight * p.y
      w[top]! += weight
    } else {
      sum.push(weight * p.y)
      w.push(weight)
      lo.push(p.x)
      hi.push(p.x)
    }
    // Pool while the last block's mean is below the one before it.
    while (sum.length > 1) {
      const j = sum.length - 1
      if (sum[j - 1]! / w[j - 1]! <= sum[j]! / w[j]!) break
      sum[j - 1]! += sum[j]!
      w[j - 1]! += w[j]!
      hi[j - 1] = hi[j]!
      sum.pop()
      w.pop()
      lo.pop()
      hi.pop()
    }
  }
  const map: IsotonicMap = { x: [], y: [] }
  for (let j = 0; j < sum.length; j++) {
    const y = sum[j]! / w[j]!
    map.x.push(lo[j]!)
    map.y.push(y)
    if (hi[j]! > lo[j]!) {
      map.x.push(hi[j]!)
      map.y.push(y)
    }
  }
  return map
}

/** Checks a map read from a file: same lengths, at least one knot, x strictly and y weakly increasing, all finite. */
export function checkMap(map: IsotonicMap): string | undefined {
  if (map.x.length === 0 || map.x.length !== map.y.length) return `needs as many x as y knots, at least one (got ${map.x.length} and ${map.y.length})`
  for (let k = 0; k < map.x.length; k++) {
    if (!Number.isFinite(map.x[k]) || !Number.isFinite(map.y[k])) return `knot ${k} is not finite`
    if (k > 0 && !(map.x[k]! > map.x[k - 1]!)) return `x knots must increase (knot ${k})`
    if (k > 0 && map.y[k]! < map.y[k - 1]!) return `y knots must not decrease (knot ${k})`
  }
  return undefined
}

/** The map's value at x: linear between knots, the end values beyond them. */
export function applyIsotonic(map: IsotonicMap, x: number): number {
  const { x: xs, y: ys } = map
  const n = xs.length
  if (x <= xs[0]!) return ys[0]!
  if (x >= xs[n - 1]!) return ys[n - 1]!
  let lo = 0
  let hi = n - 1
  while (hi - lo > 1) {
    const mid = (lo + hi) >>> 1
    if (xs[mid]! <= x) lo = mid
    else hi = mid
  }
  const t = (x - xs[lo]!) / (xs[hi]! - xs[lo]!)
  return ys[lo]! + t * (ys[hi]! - ys[lo]!)
}
