/**
 * A calibration file matched to the model versions actually loaded, and the one rule that
 * turns scores into percentiles and rater-scale values. The service (Scorer.result) and
 * the batch pipeline both annotate through `annotate`, so a response and a batch line say
 * the same thing of the same photo.
 *
 * Matching is by the sha256 of each model file: a loaded model whose file is not in the
 * calibration gets no percentile; a calibration none of whose entries is loaded is refused
 * (it was made for other weights, and would otherwise silently do nothing).
 */
import { CalibrationError, type CalibrationFile, type CombinedCalibration, type ModelCalibration, type RaterMap } from './calibration-file.js'
import { applyIsotonic } from './isotonic.js'
import { percentileOf } from './quantiles.js'

/** What binding needs of a loaded model. */
export interface LoadedModelRef {
  id: string
  version: string
  sha256: string
}

/** What a calibrated score carries besides the score itself. */
export interface CalibratedFields {
  /** 0..100, to 0.1: the share of the calibration catalogue scoring below, ties counting half. */
  percentile?: number
  /** The raters' mean the isotonic map predicts for this score. */
  calibrated?: number
}

const round1 = (x: number): number => Math.round(x * 10) / 10

/** Weights as shares of their sum: weights proportional to each other give the same combined score. */
function shares(weights: Readonly<Record<string, number>>): Map<string, number> {
  const total = Object.values(weights).reduce((a, b) => a + b, 0)
  return new Map(Object.entries(weights).map(([id, w]) => [id, total > 0 ? w / total : 0]))
}

function sameShares(a: Readonly<Record<string, number>>, b: Readonly<Record<string, number>>): boolean {
  const sa = shares(a)
  const sb = shares(b)
  if (sa.size !== sb.size) return false
  for (const [id, s] of sa) {
    const t = sb.get(id)
    if (t === undefined || Math.abs(s - t) > 1e-9) return false
  }
  return true
}

function fields(quantiles: readonly number[], rater: RaterMap | undefined, score: number): CalibratedFields {
  return { percentile: round1(percentileOf(quantiles, score)), ...(rater ? { calibrated: applyIsotonic(rater, score) } : {}) }
}

export class BoundCalibration {
  /** The loaded models' entries, by model id. */
  readonly #models: ReadonlyMap<string, ModelCalibration>
  /** Combined entries whose every model version is loaded. */
  readonly #combined: readonly CombinedCalibration[]
  readonly #shaOf: ReadonlyMap<string, string>
  readonly file: CalibrationFile
  /** sha256 of the file's bytes, when read from one: a reload compares it. */
  readonly sha256: string | undefined
  /** Loaded model ids with no entry in the calibration (served without percentiles). */
  readonly uncalibrated: readonly string[]
  /** Calibration entries for model files that are not loaded ("id@version"). */
  readonly unused: readonly string[]

  private constructor(file: CalibrationFile, sha256: string | undefined, models: Map<string, ModelCalibration>, combined: CombinedCalibration[], shaOf: Map<string, string>, uncalibrated: string[], unused: string[]) {
    this.file = file
    this.sha256 = sha256
    this.#models = models
    this.#combined = combined
    this.#shaOf = shaOf
    this.uncalibrated = uncalibrated
    this.unused = unused
  }

  /** Matches `file` to the loaded models; throws CalibrationError when nothing in it matches. */
  static bind(file: CalibrationFile, loaded: readonly LoadedModelRef[], where: string, fileSha256?: string): BoundCalibration {
    const bySha = new Map(file.models.map((m) => [m.sha256, m]))
    const models = new Map<string, ModelCalibration>()
    const uncalibrated: string[] = []
    for (const m of loaded) {
      const entry = bySha.get(m.sha256)
      if (entry) models.set(m.id, entry)
      else uncalibrated.push(m.id)
    }
    if (models.size === 0) {
      const have = file.models.map((m) => `${m.id}@${m.version} (sha256 ${m.sha256.slice(0, 12)}…)`).join(', ')
      const want = loaded.map((m) => `${m.id}@${m.version} (sha256 ${m.sha256.slice(0, 12)}…)`).join(', ')
      throw new CalibrationError(
        `${where} matches none of the loaded models: it calibrates ${have}; loaded are ${want}. ` +
          'A calibration applies only to the model files it was made with: run `nima-serve batch` and `nima-serve calibrate` with these models, or unset SCORE_CALIBRATION',
      )
    }
    const loadedShas = new Set(loaded.map((m) => m.sha256))
    const unused = file.models.filter((m) => !loadedShas.has(m.sha256)).map((m) => `${m.id}@${m.version}`)
    const shaOf = new Map(loaded.map((m) => [m.id, m.sha256]))
    const combined = file.combined.filter((c) => Object.entries(c.models).every(([id, sha]) => shaOf.get(id) === sha))
    return new BoundCalibration(file, fileSha256, models, combined, shaOf, uncalibrated, unused)
  }

  /** The entry of a loaded model, if calibrated. */
  model(id: string): ModelCalibration | undefined {
    return this.#models.get(id)
  }

  /** The model ids with an entry. */
  get calibrated(): string[] {
    return [...this.#models.keys()]
  }

  /**
   * The combined entry for a score over exactly these model ids with these weights (or
   * weights proportional to them); undefined when the calibration has none.
   */
  combinedFor(ids: readonly string[], weights: Readonly<Record<string, number>>): CombinedCalibration | undefined {
    const set = [...ids].sort().join()
    return this.#combined.find((c) => Object.keys(c.models).sort().join() === set && sameShares(c.weights, weights))
  }

  /**
   * `scores` and `combined` with `percentile` (and `calibrated` where a rater map exists)
   * added where the calibration covers them; new objects, the inputs are left as they are.
   */
  annotate<S extends { mean: number }, C extends { score: number; weights: Record<string, number> }>(
    scores: Readonly<Record<string, S>>,
    combined: C,
  ): { scores: Record<string, S & CalibratedFields>; combined: C & CalibratedFields } {
    const out: Record<string, S & CalibratedFields> = {}
    for (const [id, s] of Object.entries(scores)) {
      const m = this.#models.get(id)
      out[id] = m ? { ...s, ...fields(m.quantiles, m.rater, s.mean) } : s
    }
    const c = this.combinedFor(Object.keys(scores), combined.weights)
    return { scores: out, combined: c ? { ...combined, ...fields(c.quantiles, c.rater, combined.score) } : combined }
  }

  /** The sha256 of a loaded model's file. */
  shaOf(id: string): string | undefined {
    return this.#shaOf.get(id)
  }
}
