#!/usr/bin/env node
import { ConfigError, loadConfig } from './config/load.js'
import { startServer } from './server.js'

/** Process entry: configuration errors exit 2, model-loading failures exit 1, SIGTERM drains. */
async function main(): Promise<void> {
  let config
  try {
    config = loadConfig()
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`nima-serve: ${err.message}\n`)
      process.exit(2)
    }
    throw err
  }
  const server = await startServer(config)
  server.ready.catch(() => process.exit(1))
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.once(signal, () => {
      server.app.log.info({ signal }, 'shutdown requested')
      void server.shutdown().then(({ drained }) => {
        server.app.log.info({ drained }, drained ? 'stopped cleanly' : 'grace period over, stopping with requests in flight')
        process.exit(drained ? 0 : 1)
      })
    })
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`nima-serve: failed to start: ${err instanceof Error ? err.message : String(err)}\n`)
  process.exit(1)
})
