import { admissionOptions, ImageAdmission } from '../imaging/admission.js'
import { cliConfig, type CliIo } from './io.js'

/**
 * The service's image admission with the settings this environment gives it (pixel and
 * scan limits, memory budget, lanes, decode processes and their timeout), for a command
 * that decodes photos one at a time: one decode slot, and decode processes started only
 * when an image needs one. The caller closes it. (A file of its own so that commands which
 * decode nothing, and `--help`, do not load sharp.)
 */
export function imageAdmission(io: CliIo): ImageAdmission {
  return new ImageAdmission({ ...admissionOptions(cliConfig(io), 1), decodeProcessStart: 'when-needed' })
}
