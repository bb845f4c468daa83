/**
 * From a scored catalogue (and optionally its labels) to a calibration file: pure, so the
 * CLI (src/cli/calibrate-command.ts) only reads and writes.
 *
 * Each distinct image counts once per model version (by the sha256 of its bytes): a photo
 * listed under two hotels, or in two results files, does not weigh twice.
 */
import type { CalibrationFile, CombinedCalibration, ModelCalibration, RaterMap } from './calibration-file.js'
import { CALIBRATION_KIND } from './calibration-file.js'
import { crossValidateByGroup, type LabelledScore } from './cross-validate.js'
import { fitIsotonic } from './isotonic.js'
import { QUANTILE_STEPS, quantileTable } from './quantiles.js'

/** One scored image of the catalogue, as a batch line gives it. */
export interface CatalogueImage {
  /** sha256 of the image bytes. */
  sha256: string
  models: { id: string; version: string; task: string; sha256: string; synthetic: boolean; mean: number }[]
  /** The combined score of these models for the weights being calibrated. */
  combined: { score: number; weights: Record<string, number> }
}

/** The raters' view of one image. */
export interface RaterMean {
  /** Mean of its ratings (a histogram counts as its mean). */
  mean: number
  ratings: number
  /** Its label group; an image without one is a group of its own. */
  group: string
}

/** Label rows as the labelling export has them (src/labels/export.ts). */
export interface RatingRow {
  imageId: string
  rating: number | null
  histogram: readonly number[] | null
  group?: string | null
}

/** Each image's raters' mean: the average of its ratings, a vote histogram counting as its own mean. */
export function raterMeans(rows: readonly RatingRow[]): Map<string, RaterMean> {
  const acc = new Map<string, { sum: number; n: number; group: string | null }>()
  for (const r of rows) {
    let value: number
    if (r.rating !== null) value = r.rating
    else {
      const h = r.histogram ?? []
      const total = h.reduce((a, b) => a + b, 0)
      if (!(total > 0)) continue
      value = h.reduce((a, c, i) => a + c * (i + 1), 0) / total
    }
    const e = acc.get(r.imageId) ?? { sum: 0, n: 0, group: null }
    e.sum += value
    e.n += 1
    e.group ??= r.group ?? null
    acc.set(r.imageId, e)
  }
  return new Map([...acc].map(([id, e]) => [id, { mean: e.sum / e.n, ratings: e.n, group: e.group ?? `image:${id}` }]))
}

export interface BuildOptions {
  createdAt: string
  tool: string
  labels?: ReadonlyMap<string, RaterMean>
  folds?: number
  seed?: number
  steps?: number
}

/** What `calibrate` prints about each entry. */
export interface EntryReport {
  entry: string
  size: number
  min: number
  median: number
  max: number
  synthetic: boolean
  rater?: { images: number; ratings: number; evaluation: RaterMap['evaluation'] }
}

function raterMap(scores: ReadonlyMap<string, number>, labels: ReadonlyMap<string, RaterMean> | undefined, options: BuildOptions): RaterMap | undefined {
  if (!labels) return undefined
  const items: LabelledScore[] = []
  let ratings = 0
  for (const [image, x] of scores) {
    const l = labels.get(image)
    if (!l) continue
    items.push({ x, y: l.mean, group: l.group, weight: l.ratings })
    ratings += l.ratings
  }
  if (items.length === 0) return undefined
  const map = fitIsotonic(items)
  const evaluation = crossValidateByGroup(items, { ...(options.folds !== undefined ? { folds: options.folds } : {}), ...(options.seed !== undefined ? { seed: options.seed } : {}) })
  return { x: map.x, y: map.y, images: items.length, ratings, evaluation: evaluation ?? null }
}

function describe(entry: string, values: readonly number[], synthetic: boolean, rater: RaterMap | undefined): EntryReport {
  const sorted = [...values].sort((a, b) => a - b)
  return {
    entry,
    size: sorted.length,
    min: sorted[0]!,
    median: sorted[Math.floor((sorted.length - 1) / 2)]!,
    max: sorted[sorted.length - 1]!,
    synthetic,
    ...(rater ? { rater: { images: rater.images, ratings: rater.ratings, evaluation: rater.evaluation } } : {}),
  }
}

/** The calibration file for `images`, and a report per entry. Throws when there is no image. */
export function buildCalibration(images: readonly CatalogueImage[], options: BuildOptions): { file: CalibrationFile; report: EntryReport[] } {
  if (images.length === 0) throw new RangeError('no scored image in the input: nothing to calibrate')
  const steps = options.steps ?? QUANTILE_STEPS
  // Per model file: its info and each distinct image's mean.
  const perModel = new Map<string, { info: CatalogueImage['models'][number]; means: Map<string, number> }>()
  // Per set of model files and weights: each distinct image's combined score.
  const perCombined = new Map<string, { models: Record<string, string>; weights: Record<string, number>; synthetic: boolean; scores: Map<string, number> }>()
  for (const img of images) {
    for (const m of img.models) {
      const e = perModel.get(m.sha256) ?? { info: m, means: new Map<string, number>() }
      if (!e.means.has(img.sha256)) e.means.set(img.sha256, m.mean)
      perModel.set(m.sha256, e)
    }
    const models = Object.fromEntries([...img.models].sort((a, b) => a.id.localeCompare(b.id)).map((m) => [m.id, m.sha256]))
    const key = JSON.stringify([models, Object.entries(img.combined.weights).sort()])
    const c = perCombined.get(key) ?? { models, weights: img.combined.weights, synthetic: img.models.some((m) => m.synthetic), scores: new Map<string, number>() }
    if (!c.scores.has(img.sha256)) c.scores.set(img.sha256, img.combined.score)
    perCombined.set(key, c)
  }
  const report: EntryReport[] = []
  const models: ModelCalibration[] = [...perModel.values()].map(({ info, means }) => {
    const values = [...means.values()]
    const rater = raterMap(means, options.labels, options)
    report.push(describe(`${info.id}@${info.version}`, values, info.synthetic, rater))
    return {
      id: info.id,
      version: info.version,
      task: info.task,
      sha256: info.sha256,
      synthetic: info.synthetic,
      size: values.length,
      quantiles: quantileTable(values, steps),
      ...(rater ? { rater } : {}),
    }
  })
  const combined: CombinedCalibration[] = [...perCombined.values()].map((c) => {
    const values = [...c.scores.values()]
    const rater = raterMap(c.scores, options.labels, options)
    report.push(describe(`combined ${Object.entries(c.weights).map(([id, w]) => `${id}=${w}`).join(',')}`, values, c.synthetic, rater))
    return {
      models: c.models,
      weights: c.weights,
      size: values.length,
      quantiles: quantileTable(values, steps),
      ...(rater ? { rater } : {}),
    }
  })
  return { file: { kind: CALIBRATION_KIND, schemaVersion: 1, createdAt: options.createdAt, tool: options.tool, models, combined }, report }
}
