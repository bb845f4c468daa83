import type { Config } from './config/load.js'
import { startServer } from './server.js'
import type { ThreadPlan } from './threads/resolve-threads.js'
import { shutdownTracing } from './util/tracing.js'

/** The running service: model-loading failures exit 1, SIGTERM/SIGINT drain then exit, SIGHUP reloads the models. */
export async function runService(config: Config, threads: ThreadPlan): Promise<void> {
  const server = await startServer(config, threads)
  server.ready.catch(() => process.exit(1))
  // The reloader logs what it did; a failed reload keeps the old models and the process.
  process.on('SIGHUP', () => void server.models.reload('SIGHUP'))
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      server.app.log.info({ signal }, 'shutdown requested')
      void server.shutdown().then(async ({ drained }) => {
        server.app.log.info({ drained }, drained ? 'stopped cleanly' : 'grace period over, stopping with requests in flight')
        // The last requests' spans are still buffered (when tracing is on).
        await shutdownTracing()
        process.exit(drained ? 0 : 1)
      })
    })
  }
}

/** The last word of an entry whose start failed before the logger existed. */
export function failedToStart(err: unknown): never {
  process.stderr.write(`nima-serve: failed to start: ${err instanceof Error ? err.message : String(err)}\n`)
  process.exit(1)
}
