import { loadConfig, type Config } from '../config/load.js'
import { EXIT_CODES, failureKind, isNimaError, kFailureKind } from '../errors.js'

/** What a command may touch of the outside world; tests pass their own. */
export interface CliIo {
  out: (line: string) => void
  err: (line: string) => void
  /** Where a progress bar may be drawn; a bar appears only if this is a TTY. */
  progressStream?: NodeJS.WriteStream
  env?: NodeJS.ProcessEnv
}

/** A bad option or argument of a command: exit 2 and the usage (reportFailure). */
export class UsageError extends Error {
  override name = 'UsageError'
  readonly [kFailureKind] = 'usage' as const
}

/** Option `--name` of parsed `values`: an integer from `min` to `max`, or undefined when not given. */
export function intOption(values: Record<string, unknown>, name: string, min: number, max: number): number | undefined {
  const text = values[name]
  if (text === undefined) return undefined
  const n = Number(text)
  if (typeof text !== 'string' || !/^\d+$/.test(text) || n < min || n > max) {
    throw new UsageError(`--${name}: expected an integer from ${min} to ${max}, got ${JSON.stringify(text)}`)
  }
  return n
}

const configs = new WeakMap<CliIo, Config>()

/**
 * The service's configuration as this run's environment sets it, read through src/config
 * once per run: the same defaults, the same validation (a bad value throws ConfigError, a
 * usage error) and the same rule that an empty variable is unset. So `MODELS_DIR=` means
 * ./models and `LABELS_DB=` no database, as in the service, and a command that decodes
 * photos refuses the ones the service refuses (MAX_INPUT_PIXELS).
 */
export function cliConfig(io: CliIo): Config {
  let config = configs.get(io)
  if (!config) {
    config = loadConfig(io.env ?? {})
    configs.set(io, config)
  }
  return config
}

/**
 * Prints why a command failed and returns its exit code, by the one table in src/errors.ts:
 * an expected failure prints its message alone (a usage error followed by `usage` unless
 * the message already carries it), a bug its stack.
 */
export function reportFailure(io: CliIo, command: string | undefined, err: unknown, usage?: string): number {
  const prefix = command === undefined ? 'nima-serve' : `nima-serve ${command}`
  const kind = failureKind(err)
  if (kind === 'bug') {
    io.err(`${prefix}: unexpected failure\n${err instanceof Error ? (err.stack ?? err.message) : String(err)}`)
  } else {
    // An image the admission refused carries the code the service answers with.
    const message = isNimaError(err) ? `${err.code}: ${err.message}` : (err as Error).message
    io.err(`${prefix}: ${message}${kind === 'usage' && usage !== undefined && !message.includes('usage:') ? `\n${usage}` : ''}`)
  }
  return EXIT_CODES[kind]
}
