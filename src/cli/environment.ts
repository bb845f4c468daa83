import { loadConfig } from '../config/load.js'
import { admissionOptions, ImageAdmission } from '../imaging/admission.js'
import type { CliIo } from './models-command.js'

/**
 * MAX_INPUT_PIXELS as the service would read it from this environment, so a command that
 * decodes photos refuses the same ones the service does. A bad value throws ConfigError,
 * which `runCli` reports as a usage error.
 */
export function maxInputPixels(io: CliIo): number {
  return loadConfig(io.env ?? {}).MAX_INPUT_PIXELS
}

/**
 * The service's image admission with the settings this environment gives it (pixel and
 * scan limits, memory budget, lanes, decode processes and their timeout), for a command
 * that decodes photos one at a time: one decode slot, and decode processes started only
 * when an image needs one. The caller closes it.
 */
export function imageAdmission(io: CliIo): ImageAdmission {
  return new ImageAdmission({ ...admissionOptions(loadConfig(io.env ?? {}), 1), decodeProcessStart: 'when-needed' })
}
