import { createHash } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import { BoundCalibration } from '../calibration/bound-calibration.js'
import { readCalibration, type CalibrationFile } from '../calibration/calibration-file.js'
import type { Config } from '../config/load.js'
import type { NimaModel } from './nima-model.js'

/** SCORE_CALIBRATION as read: the file's content and its sha256 (a reload compares it). */
export interface ReadCalibration {
  path: string
  file: CalibrationFile
  sha256: string
}

/** Reads SCORE_CALIBRATION (undefined when unset); throws CalibrationError naming the file. */
export async function readConfiguredCalibration(config: Config): Promise<ReadCalibration | undefined> {
  if (config.SCORE_CALIBRATION === '') return undefined
  const { calibration, bytes } = await readCalibration(config.SCORE_CALIBRATION)
  return { path: config.SCORE_CALIBRATION, file: calibration, sha256: createHash('sha256').update(bytes).digest('hex') }
}

/**
 * Binds a read calibration to the models about to serve, and says what it covers: which
 * models get percentiles, which do not, which entries match no loaded file. Throws
 * CalibrationError when it matches none of them.
 */
export function bindCalibration(read: ReadCalibration, models: Iterable<NimaModel>, log: FastifyBaseLogger): BoundCalibration {
  const loaded = [...models].map((m) => ({ id: m.info.id, version: m.info.version, sha256: m.manifest.sha256 }))
  const bound = BoundCalibration.bind(read.file, loaded, `SCORE_CALIBRATION ${read.path}`, read.sha256)
  const sizes = bound.calibrated.map((id) => `${id} (${bound.model(id)!.size} images${bound.model(id)!.rater ? ', rater map' : ''})`)
  log.info({ calibration: read.path, createdAt: read.file.createdAt, sha256: read.sha256 }, `calibration ${read.path} (${read.file.createdAt}) gives percentiles for ${sizes.join(', ')}`)
  if (bound.uncalibrated.length > 0) {
    log.warn({ calibration: read.path, models: bound.uncalibrated }, `calibration ${read.path} has no entry for the loaded file of ${bound.uncalibrated.join(', ')}: served without percentiles`)
  }
  if (bound.unused.length > 0) log.info({ calibration: read.path, unused: bound.unused }, `calibration entries for model files not loaded: ${bound.unused.join(', ')}`)
  const synthetic = bound.calibrated.filter((id) => bound.model(id)!.synthetic)
  if (synthetic.length > 0) log.warn({ calibration: read.path, models: synthetic }, `calibration of SYNTHETIC model${synthetic.length > 1 ? 's' : ''} ${synthetic.join(', ')}: the percentiles rank meaningless scores`)
  return bound
}
