import { setFlagsFromString } from 'node:v8'
import type { Config } from './config/load.js'

/**
 * V8's garbage-collector settings, for every isolate of the process (the session threads'
 * too): set once, before the service allocates. V8 reads the flag each time it considers
 * starting a collection, so setting it at run time takes effect.
 *
 * Why off by default: V8 counts ArrayBuffers (request bodies, decoded pixels) as external
 * memory, and with incremental marking it counts whatever was allocated since the last
 * full collection against the old generation's room. With requests queueing, that room
 * was always short: a full collection every 150–250 ms, and after the queue emptied too
 * (docs/performance.md, "Garbage collection under load").
 */
export function applyGcSettings(config: Pick<Config, 'GC_INCREMENTAL_MARKING'>): void {
  setFlagsFromString(config.GC_INCREMENTAL_MARKING ? '--incremental-marking' : '--no-incremental-marking')
}
