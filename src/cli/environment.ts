import { loadConfig } from '../config/load.js'
import type { CliIo } from './models-command.js'

/**
 * MAX_INPUT_PIXELS as the service would read it from this environment, so a command that
 * decodes photos refuses the same ones the service does. A bad value throws ConfigError,
 * which `runCli` reports as a usage error.
 */
export function maxInputPixels(io: CliIo): number {
  return loadConfig(io.env ?? {}).MAX_INPUT_PIXELS
}
