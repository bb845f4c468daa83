import { createLimiter, type Limiter } from '../util/limiter.js'

/**
 * Per-host concurrency limit, so that ranking one hotel's 100 photos (all on one CDN)
 * never opens 100 requests to that CDN at once: one FIFO limiter (src/util/limiter.ts)
 * per host, created on first use and dropped when the host goes idle.
 */
export interface HostLimiter {
  /** Runs `fn` when `host` has a free slot. Host keys are compared case-insensitively. */
  run<T>(host: string, fn: () => T | PromiseLike<T>, signal?: AbortSignal): Promise<T>
  /** Tasks of `host` running now. */
  active(host: string): number
  /** Tasks of `host` waiting for a slot. */
  pending(host: string): number
  /** Hosts with running or waiting tasks. */
  readonly hosts: number
  readonly maxPerHost: number
}

/**
 * @param maxPerHost integer ≥ 1: how many tasks may run at once for one host.
 */
export function createHostLimiter(maxPerHost: number): HostLimiter {
  if (!Number.isInteger(maxPerHost) || maxPerHost < 1) {
    throw new TypeError(`createHostLimiter: maxPerHost must be an integer ≥ 1, got ${String(maxPerHost)}`)
  }
  const lines = new Map<string, Limiter>()

  return {
    maxPerHost,
    get hosts() {
      return lines.size
    },
    active: (host) => lines.get(host.toLowerCase())?.active ?? 0,
    pending: (host) => lines.get(host.toLowerCase())?.pending ?? 0,

    run<T>(host: string, fn: () => T | PromiseLike<T>, signal?: AbortSignal): Promise<T> {
      if (signal?.aborted) return Promise.reject(signal.reason)
      const key = host.toLowerCase()
      let line = lines.get(key)
      if (!line) {
        const created = createLimiter(maxPerHost, () => {
          if (lines.get(key) === created) lines.delete(key)
        })
        lines.set(key, created)
        line = created
      }
      return line.run(fn, signal)
    },
  }
}
