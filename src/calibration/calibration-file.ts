/**
 * The calibration file (`nima-serve calibrate` writes it, SCORE_CALIBRATION loads it): per
 * model version, keyed by the sha256 of its model file, the quantile table of the
 * catalogue's means; per set of model versions, that of the combined score for one set
 * of weights; and, when the catalogue was labelled, the isotonic map to the raters' mean
 * with its held-out error. A calibration never applies to other weights: a model whose
 * file's sha256 is not in it gets no percentile.
 */
import { open } from 'node:fs/promises'
import { Type, type Static } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import { checkMap } from './isotonic.js'
import { checkTable } from './quantiles.js'

export const CALIBRATION_KIND = 'nima-serve-calibration'

/** Refused beyond this: a calibration of 64 models and their combinations is well under 2 MiB. */
export const MAX_CALIBRATION_BYTES = 16 * 1024 * 1024

const Sha256 = Type.String({ pattern: '^[0-9a-f]{64}$' })
const ModelId = Type.String({ pattern: '^[a-z][a-z0-9-]*$', maxLength: 64 })
const Quantiles = Type.Array(Type.Number(), {
  minItems: 2,
  maxItems: 100_001,
  description: 'scores at the probabilities 0, 1/S … 1 of the catalogue (Hazen positions), non-decreasing',
})

const ErrorMeasure = Type.Object({ mae: Type.Number(), rmse: Type.Number() })

export const RaterMap = Type.Object({
  x: Type.Array(Type.Number(), { minItems: 1, maxItems: 100_000, description: 'model score at each knot, increasing' }),
  y: Type.Array(Type.Number(), { minItems: 1, maxItems: 100_000, description: "raters' mean at each knot, non-decreasing" }),
  images: Type.Integer({ minimum: 1, description: 'labelled images of the catalogue the map was fitted on' }),
  ratings: Type.Integer({ minimum: 1 }),
  evaluation: Type.Union(
    [
      Type.Object({
        folds: Type.Integer(),
        groups: Type.Integer(),
        images: Type.Integer(),
        before: ErrorMeasure,
        constant: ErrorMeasure,
        after: ErrorMeasure,
      }),
      Type.Null(),
    ],
    { description: 'held-out error by group (null: fewer than two groups, nothing could be held out)' },
  ),
})
export type RaterMap = Static<typeof RaterMap>

export const ModelCalibration = Type.Object({
  id: ModelId,
  version: Type.String(),
  task: Type.String(),
  sha256: Sha256,
  synthetic: Type.Boolean(),
  size: Type.Integer({ minimum: 1, description: 'distinct images in the catalogue' }),
  quantiles: Quantiles,
  rater: Type.Optional(RaterMap),
})
export type ModelCalibration = Static<typeof ModelCalibration>

export const CombinedCalibration = Type.Object({
  models: Type.Record(ModelId, Sha256, { description: 'the model versions combined: id → sha256 of the model file' }),
  weights: Type.Record(ModelId, Type.Number({ minimum: 0 }), { description: 'the weights of the combined score, by model id' }),
  size: Type.Integer({ minimum: 1 }),
  quantiles: Quantiles,
  rater: Type.Optional(RaterMap),
})
export type CombinedCalibration = Static<typeof CombinedCalibration>

export const CalibrationFile = Type.Object({
  kind: Type.Literal(CALIBRATION_KIND),
  schemaVersion: Type.Literal(1),
  createdAt: Type.String({ pattern: '^[0-9]{4}-[0-9]{2}-[0-9]{2}T' }),
  tool: Type.String(),
  models: Type.Array(ModelCalibration, { minItems: 1, maxItems: 1024 }),
  combined: Type.Array(CombinedCalibration, { maxItems: 1024 }),
})
export type CalibrationFile = Static<typeof CalibrationFile>

/** A calibration file that cannot be used (unreadable, invalid, or for other model weights). */
export class CalibrationError extends Error {
  override name = 'CalibrationError'
}

const check = TypeCompiler.Compile(CalibrationFile)

/** Validates a parsed calibration: the schema, then what the schema cannot say (sorted tables, matching knots, unique keys). */
export function parseCalibration(value: unknown, where: string): CalibrationFile {
  if (!check.Check(value)) {
    const problems = [...check.Errors(value)].slice(0, 3).map((e) => `${e.path || '/'}: ${e.message}`)
    throw new CalibrationError(`${where} is not a nima-serve calibration: ${problems.join('; ')}`)
  }
  const seen = new Set<string>()
  const problem = (what: string, message: string | undefined): void => {
    if (message !== undefined) throw new CalibrationError(`${where}: ${what} ${message}`)
  }
  for (const m of value.models) {
    if (seen.has(m.sha256)) throw new CalibrationError(`${where}: model sha256 ${m.sha256} appears twice`)
    seen.add(m.sha256)
    problem(`model ${m.id} (${m.sha256.slice(0, 12)}) quantiles`, checkTable(m.quantiles))
    if (m.rater) problem(`model ${m.id} rater map`, checkMap(m.rater))
  }
  value.combined.forEach((c, i) => {
    problem(`combined[${i}] quantiles`, checkTable(c.quantiles))
    if (c.rater) problem(`combined[${i}] rater map`, checkMap(c.rater))
    const ids = Object.keys(c.models).sort()
    if (ids.join() !== Object.keys(c.weights).sort().join()) throw new CalibrationError(`${where}: combined[${i}] has weights for other models than it combines`)
  })
  return value
}

/** Reads and validates a calibration file; every failure is a CalibrationError naming the file. */
export async function readCalibration(path: string): Promise<{ calibration: CalibrationFile; bytes: Buffer }> {
  let bytes: Buffer
  try {
    const fh = await open(path, 'r')
    try {
      const { size } = await fh.stat()
      if (size > MAX_CALIBRATION_BYTES) throw new CalibrationError(`SCORE_CALIBRATION ${path} has ${size} bytes; at most ${MAX_CALIBRATION_BYTES} are read`)
      bytes = await fh.readFile()
    } finally {
      await fh.close()
    }
  } catch (err) {
    if (err instanceof CalibrationError) throw err
    throw new CalibrationError(`SCORE_CALIBRATION ${path} cannot be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, { cause: err })
  }
  let json: unknown
  try {
    json = JSON.parse(bytes.toString('utf8'))
  } catch (err) {
    throw new CalibrationError(`SCORE_CALIBRATION ${path} is not JSON (${(err as Error).message})`, { cause: err })
  }
  return { calibration: parseCalibration(json, `SCORE_CALIBRATION ${path}`), bytes }
}
