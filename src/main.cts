#!/usr/bin/env node
/**
 * The production entry (`node dist/main.cjs`: npm start, the images). CommonJS on purpose:
 * libuv reads UV_THREADPOOL_SIZE once, when its pool first starts, and Node's ES module
 * loader reads files asynchronously, which starts the pool before any line of an ES module
 * entry runs (measured: 4 pool threads whatever an ESM entry sets). The CommonJS loader and
 * require() of ES modules (Node >= 20.19) read files synchronously, so here nothing has
 * touched the pool yet: the config and the CPU quota are read with synchronous calls only,
 * the resolved size goes into process.env (which is the C environment libuv getenv()s),
 * and only then is the rest of the service imported. Tracing, when configured, starts
 * before that import too (src/tracing/sdk.ts).
 */
import { configAndThreadsOrExit, startTracingOrExit } from './startup.js'

const { config, threads } = configAndThreadsOrExit('to size')
startTracingOrExit()
process.env['UV_THREADPOOL_SIZE'] = String(threads.uvThreadpoolSize.value)
import('./service-main.js').then(
  ({ runService, failedToStart }) => runService(config, threads).catch(failedToStart),
  (err: unknown) => {
    process.stderr.write(`nima-serve: failed to start: ${err instanceof Error ? err.message : String(err)}\n`)
    process.exit(1)
  },
)
