/**
 * The spread of opinions in the labels: how far apart raters put the same photo. The label
 * summary reports it, and fine-tuning uses it as the σ a single rating is given
 * (src/finetune/targets.ts explains the rule).
 */

/**
 * σ when the data cannot tell: about the per-photo spread of votes in AVA, whose
 * distributions the base aesthetic head was trained to reproduce, so a fine-tuned head
 * keeps reporting spreads (the service's `std`) of the same kind.
 */
export const DEFAULT_RATING_STD = 1.4
/** Bounds of a data-estimated σ: below 0.5 a rating is nearly one-hot, above 2.5 nearly flat. */
export const RATING_STD_BOUNDS = [0.5, 2.5] as const
/** Degrees of freedom (Σ (nᵢ − 1) over multiply-rated images) needed to trust an estimate. */
export const MIN_STD_DOF = 20

export interface StdEstimate {
  sigma: number
  source: 'data' | 'default' | 'fixed'
  /** Pooled degrees of freedom behind a data estimate. */
  dof: number
  /** The raw estimate before clamping (NaN when there were no repeated ratings). */
  raw: number
}

/**
 * σ from repeated integer ratings of the same image: the pooled within-image standard
 * deviation sqrt(Σᵢ Σⱼ (r_ij − r̄ᵢ)² / Σᵢ (nᵢ − 1)), clamped to RATING_STD_BOUNDS;
 * DEFAULT_RATING_STD when fewer than MIN_STD_DOF degrees of freedom back it.
 */
export function estimateRatingStd<R extends { imageId: string; rating?: number | null }>(records: readonly R[]): StdEstimate {
  const byImage = new Map<string, number[]>()
  for (const r of records) {
    if (typeof r.rating !== 'number') continue
    const list = byImage.get(r.imageId) ?? []
    list.push(r.rating)
    byImage.set(r.imageId, list)
  }
  let ss = 0
  let dof = 0
  for (const ratings of byImage.values()) {
    if (ratings.length < 2) continue
    const m = ratings.reduce((a, b) => a + b, 0) / ratings.length
    for (const r of ratings) ss += (r - m) ** 2
    dof += ratings.length - 1
  }
  const raw = dof > 0 ? Math.sqrt(ss / dof) : NaN
  if (dof < MIN_STD_DOF) return { sigma: DEFAULT_RATING_STD, source: 'default', dof, raw }
  return { sigma: Math.min(RATING_STD_BOUNDS[1], Math.max(RATING_STD_BOUNDS[0], raw)), source: 'data', dof, raw }
}
