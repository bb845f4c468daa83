#!/usr/bin/env node
import { runService, failedToStart } from './service-main.js'
import { configAndThreadsOrExit, startTracingOrExit } from './startup.js'

/**
 * ES module entry, for `node --import tsx src/main.ts` and `node dist/main.js`. Node's ES
 * module loader has already started libuv's pool at its default size by the time this
 * runs, so GET /models reports that size; production starts dist/main.cjs instead.
 */
const { config, threads } = configAndThreadsOrExit('started')
startTracingOrExit()
runService(config, threads).catch(failedToStart)
