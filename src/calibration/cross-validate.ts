/**
 * How well a rater map predicts ratings it has not seen: k-fold cross-validation by group.
 * The images of one group (a hotel, a shoot) are always held out together, so a map is
 * never scored on photos it saw near-duplicates of. Each fold's map is fitted on the other
 * folds and predicts the held-out images; the errors of every held-out image are pooled.
 *
 * Three predictions of the raters' mean are compared on the same held-out images:
 * - `before`: the model's mean itself (what a response says without a rater map);
 * - `constant`: the training folds' mean rating (a map that knows nothing of the photo);
 * - `after`: the isotonic map fitted on the training folds.
 * A map is worth having when `after` beats both.
 */
import { createHash } from 'node:crypto'
import { applyIsotonic, fitIsotonic } from './isotonic.js'

export interface LabelledScore {
  /** The model's score (mean or combined). */
  x: number
  /** The raters' mean for the image. */
  y: number
  /** Images of one group are held out together. */
  group: string
  /** Ratings behind y (weights the fit). Default 1. */
  weight?: number
}

export interface ErrorMeasure {
  /** Mean absolute error, in points of the 1..10 scale. */
  mae: number
  /** Root mean squared error. */
  rmse: number
}

export interface CrossValidation {
  folds: number
  groups: number
  /** Held-out images (every labelled image, once). */
  images: number
  before: ErrorMeasure
  constant: ErrorMeasure
  after: ErrorMeasure
}

export const DEFAULT_FOLDS = 5

function measure(errors: readonly number[]): ErrorMeasure {
  const n = errors.length
  const mae = errors.reduce((a, e) => a + Math.abs(e), 0) / n
  const rmse = Math.sqrt(errors.reduce((a, e) => a + e * e, 0) / n)
  return { mae, rmse }
}

/**
 * Groups dealt into min(`folds`, number of groups) folds in the order of
 * sha256(seed:group), so a group's fold depends only on the seed and its own name.
 * Undefined when there are fewer than two groups: nothing could be held out.
 */
export function crossValidateByGroup(items: readonly LabelledScore[], options: { folds?: number; seed?: number } = {}): CrossValidation | undefined {
  const wanted = options.folds ?? DEFAULT_FOLDS
  if (!Number.isInteger(wanted) || wanted < 2) throw new RangeError(`folds: expected an integer ≥ 2, got ${wanted}`)
  const seed = options.seed ?? 1
  const groups = [...new Set(items.map((i) => i.group))]
  if (groups.length < 2) return undefined
  const folds = Math.min(wanted, groups.length)
  const order = groups
    .map((g) => ({ g, k: createHash('sha256').update(`${seed}:${g}`).digest('hex') }))
    .sort((a, b) => (a.k < b.k ? -1 : a.k > b.k ? 1 : 0))
  const foldOf = new Map(order.map(({ g }, i) => [g, i % folds]))
  const before: number[] = []
  const constant: number[] = []
  const after: number[] = []
  for (let f = 0; f < folds; f++) {
    const train = items.filter((i) => foldOf.get(i.group) !== f)
    const test = items.filter((i) => foldOf.get(i.group) === f)
    const map = fitIsotonic(train.map(({ x, y, weight }) => ({ x, y, ...(weight !== undefined ? { weight } : {}) })))
    const tw = train.reduce((a, i) => a + (i.weight ?? 1), 0)
    const mean = train.reduce((a, i) => a + (i.weight ?? 1) * i.y, 0) / tw
    for (const i of test) {
      before.push(i.x - i.y)
      constant.push(mean - i.y)
      after.push(applyIsotonic(map, i.x) - i.y)
    }
  }
  return { folds, groups: groups.length, images: items.length, before: measure(before), constant: measure(constant), after: measure(after) }
}
