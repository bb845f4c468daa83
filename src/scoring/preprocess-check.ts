/**
 * What PREPROCESS=fast costs in scores, measured before it is switched on: every photo of a
 * folder scored by each installed model twice, once per preprocessing (src/imaging/preprocess.ts),
 * through the service's own admission, decode and tensor code, one image per run.
 *
 * Per model: how far the means move (max and mean |Δmean|), whether the order of the photos
 * holds (Spearman's rank correlation of the two orders) and the photo that moves most in
 * that order. The figures describe the installed weights: on SYNTHETIC models (seeded random)
 * they say how sensitive random weights are to the pixels, nothing about real photos' scores.
 */
import { readFile } from 'node:fs/promises'
import type { ImageAdmission } from '../imaging/admission.js'
import type { ModelManifest } from '../models/manifest.js'
import { decodeIntoTensor, ManifestModel } from '../models/model-pipeline.js'
import { spearman } from '../util/correlation.js'
import { meanOf } from './distribution.js'

export interface PreprocessAgreement {
  id: string
  version: string
  synthetic: boolean
  images: number
  maxAbsDeltaMean: number
  meanAbsDeltaMean: number
  /** The photo with the largest |Δmean|. */
  worst: string
  /** Spearman's rank correlation of the photos ordered by exact and by fast means (ties averaged). */
  spearman: number
  /** The photo whose place in the order (1 = best) moves most, and its two places. */
  largestRankChange: { photo: string; exact: number; fast: number }
}

export interface PreprocessCheck {
  models: PreprocessAgreement[]
  /** Photos that could not be decoded (left out of every figure), with why. */
  skipped: { photo: string; reason: string }[]
}

/** Places 1..n, best (highest) first; equal means keep the folder's order. */
export function placesByScore(means: readonly number[]): number[] {
  const order = means.map((_, i) => i).sort((a, b) => means[b]! - means[a]! || a - b)
  const places = new Array<number>(means.length)
  order.forEach((photo, place) => (places[photo] = place + 1))
  return places
}

/** The agreement of one model's exact and fast means over the same photos (pure: the figures `comparePreprocessing` reports). */
export function agreement(photos: readonly string[], exact: readonly number[], fast: readonly number[]): Omit<PreprocessAgreement, 'id' | 'version' | 'synthetic'> {
  if (photos.length === 0 || exact.length !== photos.length || fast.length !== photos.length) throw new RangeError('agreement: one exact and one fast mean per photo, at least one photo')
  const deltas = exact.map((e, i) => Math.abs(e - fast[i]!))
  const worstIndex = deltas.indexOf(Math.max(...deltas))
  const [pe, pf] = [placesByScore(exact), placesByScore(fast)]
  let moved = 0
  for (let i = 1; i < photos.length; i++) if (Math.abs(pe[i]! - pf[i]!) > Math.abs(pe[moved]! - pf[moved]!)) moved = i
  return {
    images: photos.length,
    maxAbsDeltaMean: deltas[worstIndex]!,
    meanAbsDeltaMean: deltas.reduce((a, d) => a + d, 0) / deltas.length,
    worst: photos[worstIndex]!,
    // One photo has no order to compare: full agreement by definition.
    spearman: photos.length === 1 ? 1 : spearman(exact, fast),
    largestRankChange: { photo: photos[moved]!, exact: pe[moved]!, fast: pf[moved]! },
  }
}

/** Scores `photos` with each model, exact and fast, on the CPU provider; see the module comment. */
export async function comparePreprocessing(
  models: readonly { manifest: ModelManifest; modelPath: string }[],
  photos: readonly string[],
  admission: ImageAdmission,
): Promise<PreprocessCheck> {
  if (photos.length === 0) throw new RangeError('no photos to compare on')
  const skipped: PreprocessCheck['skipped'] = []
  const results: PreprocessAgreement[] = []
  const bytes = new Map<string, Buffer>()
  for (const photo of photos) bytes.set(photo, await readFile(photo))
  for (const { manifest, modelPath } of models) {
    const model = await ManifestModel.open(modelPath, manifest, { providers: ['cpu'], intraOpThreads: 0, interOpThreads: 1 })
    try {
      const input = model.batchBuffer(1)
      const values = manifest.output.scores.values
      const scored: string[] = []
      const exact: number[] = []
      const fast: number[] = []
      for (const photo of photos) {
        const means: number[] = []
        try {
          for (const preprocess of ['exact', 'fast'] as const) {
            await decodeIntoTensor(admission, bytes.get(photo)!, model.spec, input, 0, preprocess)
            means.push(meanOf((await model.run(input, 1)).scores, values))
          }
        } catch (err) {
          if (!skipped.some((s) => s.photo === photo)) skipped.push({ photo, reason: err instanceof Error ? err.message : String(err) })
          continue
        }
        scored.push(photo)
        exact.push(means[0]!)
        fast.push(means[1]!)
      }
      if (scored.length === 0) throw new RangeError(`none of the ${photos.length} photos could be decoded`)
      results.push({ id: manifest.id, version: manifest.version, synthetic: manifest.synthetic, ...agreement(scored, exact, fast) })
    } finally {
      await model.dispose()
    }
  }
  return { models: results, skipped }
}
