import { createRequire } from 'node:module'
import { ConfigError, loadConfig, type Config } from './config/load.js'
import { EXIT_CODES, failureKind } from './errors.js'
import { applyGcSettings } from './gc-settings.js'
import { planThreads } from './threads/plan-threads.js'
import type { ThreadPlan } from './threads/resolve-threads.js'
import { tracingSettings } from './tracing/settings.js'

/**
 * What a process entry needs before anything else: the validated config, the thread
 * plan and the garbage collector's settings (gc-settings.ts). A bad value, or a quota
 * file that does not parse (both ConfigError), exits with the reason and the exit code
 * of src/errors.ts's table (2); anything else is a bug and propagates.
 */
export function configAndThreadsOrExit(uvPool: 'to size' | 'started'): { config: Config; threads: ThreadPlan } {
  try {
    const config = loadConfig()
    applyGcSettings(config)
    return { config, threads: planThreads(config, uvPool) }
  } catch (err) {
    const kind = failureKind(err)
    if (kind === 'bug') throw err
    process.stderr.write(`nima-serve: ${(err as Error).message}\n`)
    process.exit(EXIT_CODES[kind])
  }
}

/**
 * Starts exporting traces when the OTEL_* variables ask for it (src/tracing/settings.ts);
 * with tracing off the SDK is not even loaded. Synchronous, so src/main.cts has it running
 * before it imports the service. A value the service cannot honour exits 2, as above.
 */
export function startTracingOrExit(env: NodeJS.ProcessEnv = process.env): void {
  let settings
  try {
    settings = tracingSettings(env)
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err
    process.stderr.write(`nima-serve: ${err.message}\n`)
    process.exit(EXIT_CODES.usage)
  }
  if (settings) (createRequire(import.meta.url)('./tracing/sdk.js') as typeof import('./tracing/sdk.js')).startTracing(settings)
}
