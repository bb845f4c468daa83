import { estimateRatingStd, type StdEstimate } from './rating-spread.js'

/** One stored label, reduced to what statistics need. */
export interface RatingRow {
  imageId: string
  rater: string
  rating: number | null
  histogram: readonly number[] | null
}

export interface Agreement {
  /** Images rated by two raters or more. */
  images: number
  /** Pairs of ratings of the same image by different raters. */
  pairs: number
  /** Mean |score_a − score_b| over those pairs (null without pairs). */
  meanAbsDiff: number | null
  /** Fraction of pairs at most 1 point apart. */
  within1: number | null
  /** Fraction of pairs that agree exactly. */
  exact: number | null
}

export interface LabelSummary {
  images: number
  labelledImages: number
  ratings: number
  raters: { rater: string; ratings: number }[]
  /** Count of integer ratings per value 1..10. */
  ratingHistogram: number[]
  /** Labels given as a full vote histogram. */
  histogramLabels: number
  /** Mean score over all labels (a histogram counts with its mean); null without labels. */
  meanScore: number | null
  agreement: Agreement
  /** The rating spread σ fine-tuning would use for single ratings (rating-spread.ts). */
  ratingStd: StdEstimate
}

/** A label's score on the 1..10 scale: the rating, or the histogram's mean. */
export function labelScore(row: Pick<RatingRow, 'rating' | 'histogram'>): number {
  if (row.rating !== null) return row.rating
  const h = row.histogram ?? []
  let n = 0
  let s = 0
  h.forEach((c, i) => {
    n += c
    s += c * (i + 1)
  })
  return n > 0 ? s / n : NaN
}

export function agreement(rows: readonly RatingRow[]): Agreement {
  const byImage = new Map<string, number[]>()
  for (const r of rows) {
    const list = byImage.get(r.imageId) ?? []
    list.push(labelScore(r))
    byImage.set(r.imageId, list)
  }
  let images = 0
  let pairs = 0
  let absSum = 0
  let within1 = 0
  let exact = 0
  for (const scores of byImage.values()) {
    if (scores.length < 2) continue
    images++
    for (let i = 0; i < scores.length; i++) {
      for (let j = i + 1; j < scores.length; j++) {
        const d = Math.abs(scores[i]! - scores[j]!)
        pairs++
        absSum += d
        if (d <= 1 + 1e-9) within1++
        if (d < 1e-9) exact++
      }
    }
  }
  return pairs === 0
    ? { images, pairs, meanAbsDiff: null, within1: null, exact: null }
    : { images, pairs, meanAbsDiff: absSum / pairs, within1: within1 / pairs, exact: exact / pairs }
}

export function summarizeLabels(imageCount: number, rows: readonly RatingRow[]): LabelSummary {
  const raters = new Map<string, number>()
  const ratingHistogram = new Array<number>(10).fill(0) // ratings 1..10
  let histogramLabels = 0
  let scoreSum = 0
  for (const r of rows) {
    raters.set(r.rater, (raters.get(r.rater) ?? 0) + 1)
    if (r.rating !== null) ratingHistogram[r.rating - 1]!++
    else histogramLabels++
    scoreSum += labelScore(r)
  }
  return {
    images: imageCount,
    labelledImages: new Set(rows.map((r) => r.imageId)).size,
    ratings: rows.length,
    raters: [...raters].map(([rater, ratings]) => ({ rater, ratings })).sort((a, b) => b.ratings - a.ratings || a.rater.localeCompare(b.rater)),
    ratingHistogram,
    histogramLabels,
    meanScore: rows.length > 0 ? scoreSum / rows.length : null,
    agreement: agreement(rows),
    ratingStd: estimateRatingStd(rows),
  }
}
