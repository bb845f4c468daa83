/**
 * From human labels to the target distributions the head is trained on.
 *
 * The rule (documented in docs/labelling-and-finetuning.md):
 * - a 10-bin vote histogram is used as it is, normalised to sum to 1;
 * - a single integer rating r becomes the discrete Gaussian over the bins 1..10,
 *   p_k ∝ exp(-(k - r)² / (2σ²)): the maximum-entropy distribution on the bins with mean ≈ r
 *   and spread σ (idealo turned TID2013's mean opinion scores into distributions the same
 *   way). One rater's vote is one draw from the spread of opinions about the photo, so σ is
 *   the raters' disagreement: estimated from the data where images carry several integer
 *   ratings (pooled within-image standard deviation), otherwise DEFAULT_RATING_STD
 *   (src/labels/rating-spread.ts);
 * - an image rated several times gets the average of its ratings' distributions, each
 *   rating weighing the same.
 * Truncation at the ends of the scale pulls the mean of an extreme rating inwards
 * (10 → ≈9.2 at σ = 1.4); the order of ratings is kept, so ranking is unaffected.
 */

export const BINS = 10

export function ratingDistribution(rating: number, sigma: number): Float64Array {
  if (!Number.isInteger(rating) || rating < 1 || rating > BINS) throw new RangeError(`rating: expected an integer from 1 to ${BINS}, got ${rating}`)
  if (!(sigma > 0) || !Number.isFinite(sigma)) throw new RangeError(`sigma: expected a positive number, got ${sigma}`)
  const p = new Float64Array(BINS)
  let sum = 0
  for (let k = 1; k <= BINS; k++) {
    const w = Math.exp(-((k - rating) ** 2) / (2 * sigma * sigma))
    p[k - 1] = w
    sum += w
  }
  for (let i = 0; i < BINS; i++) p[i]! /= sum
  return p
}

export function histogramDistribution(histogram: readonly number[]): Float64Array {
  if (histogram.length !== BINS) throw new RangeError(`histogram: expected ${BINS} bins, got ${histogram.length}`)
  let sum = 0
  for (const c of histogram) {
    if (!(c >= 0) || !Number.isFinite(c)) throw new RangeError(`histogram: expected counts >= 0, got ${c}`)
    sum += c
  }
  if (sum === 0) throw new RangeError('histogram: all bins are 0')
  return Float64Array.from(histogram, (c) => c / sum)
}

export interface LabelRecord {
  imageId: string
  rater: string
  rating?: number | null
  histogram?: readonly number[] | null
}

/** One target distribution per image (average of its ratings' distributions), in first-seen order. */
export function targetsByImage(records: readonly LabelRecord[], sigma: number): Map<string, { target: Float64Array; count: number }> {
  const acc = new Map<string, { target: Float64Array; count: number }>()
  for (const r of records) {
    const hasRating = typeof r.rating === 'number'
    const hasHistogram = Array.isArray(r.histogram)
    if (hasRating === hasHistogram) throw new RangeError(`label of ${r.imageId} by ${r.rater}: expected exactly one of rating and histogram`)
    const d = hasRating ? ratingDistribution(r.rating as number, sigma) : histogramDistribution(r.histogram as number[])
    const entry = acc.get(r.imageId) ?? { target: new Float64Array(BINS), count: 0 }
    for (let k = 0; k < BINS; k++) entry.target[k]! += d[k]!
    entry.count++
    acc.set(r.imageId, entry)
  }
  for (const entry of acc.values()) for (let k = 0; k < BINS; k++) entry.target[k]! /= entry.count
  return acc
}
