import { createHostLimiter } from '../fetching/host-limiter.js'

/**
 * A FIFO concurrency limit: at most `limit` tasks run at once, the others start strictly
 * in arrival order, and a waiting task whose AbortSignal fires leaves the line and
 * rejects with the signal's reason without ever running.
 */
export interface Limiter {
  run<T>(fn: () => T | PromiseLike<T>, signal?: AbortSignal): Promise<T>
  /** Tasks running now. */
  readonly active: number
  /** Tasks waiting for a slot. */
  readonly pending: number
  readonly limit: number
}

const LINE = 'all'

/**
 * One line of the per-host limiter, which already has the hand-off and abortable waiting
 * this needs (src/fetching/host-limiter.ts and its tests).
 *
 * @param limit integer ≥ 1: how many tasks may run at once.
 */
export function createLimiter(limit: number): Limiter {
  if (!Number.isInteger(limit) || limit < 1) throw new TypeError(`createLimiter: limit must be an integer ≥ 1, got ${String(limit)}`)
  const line = createHostLimiter(limit)
  return {
    limit,
    run: (fn, signal) => line.run(LINE, fn, signal),
    get active() {
      return line.active(LINE)
    },
    get pending() {
      return line.pending(LINE)
    },
  }
}
