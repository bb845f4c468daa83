/**
 * Per-host concurrency limit, so that ranking one hotel's 100 photos (all on one CDN)
 * never opens 100 requests to that CDN at once.
 *
 * Tasks for a host run at most `maxPerHost` at a time; the others wait and are started
 * strictly in arrival order (a finishing task hands its slot straight to the oldest
 * waiter, so a newcomer can never overtake). A waiting task whose AbortSignal fires
 * leaves the queue and rejects with the signal's reason without ever running.
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

interface Waiter {
  start(): void
  next: Waiter | undefined
  prev: Waiter | undefined
}

/** Per-host state: running count and a doubly linked FIFO (O(1) removal on abort). */
interface HostState {
  active: number
  pending: number
  head: Waiter | undefined
  tail: Waiter | undefined
}

/**
 * @param maxPerHost integer ≥ 1: how many tasks may run at once for one host.
 */
export function createHostLimiter(maxPerHost: number): HostLimiter {
  if (!Number.isInteger(maxPerHost) || maxPerHost < 1) {
    throw new TypeError(`createHostLimiter: maxPerHost must be an integer ≥ 1, got ${String(maxPerHost)}`)
  }

  const states = new Map<string, HostState>()

  const enqueue = (state: HostState, waiter: Waiter): void => {
    waiter.prev = state.tail
    if (state.tail) state.tail.next = waiter
    else state.head = waiter
    state.tail = waiter
    state.pending += 1
  }

  const unlink = (state: HostState, waiter: Waiter): void => {
    if (waiter.prev) waiter.prev.next = waiter.next
    else state.head = waiter.next
    if (waiter.next) waiter.next.prev = waiter.prev
    else state.tail = waiter.prev
    waiter.next = waiter.prev = undefined
    state.pending -= 1
  }

  const release = (key: string, state: HostState): void => {
    const next = state.head
    if (next) {
      // The slot passes straight to the oldest waiter: `active` does not change.
      unlink(state, next)
      next.start()
      return
    }
    state.active -= 1
    if (state.active === 0) states.delete(key)
  }

  return {
    maxPerHost,
    get hosts() {
      return states.size
    },
    active: (host) => states.get(host.toLowerCase())?.active ?? 0,
    pending: (host) => states.get(host.toLowerCase())?.pending ?? 0,

    run<T>(host: string, fn: () => T | PromiseLike<T>, signal?: AbortSignal): Promise<T> {
      if (signal?.aborted) return Promise.reject(signal.reason)
      const key = host.toLowerCase()
      let state = states.get(key)
      if (!state) {
        state = { active: 0, pending: 0, head: undefined, tail: undefined }
        states.set(key, state)
      }
      const hostState = state

      return new Promise<T>((resolve, reject) => {
        const execute = (): void => {
          let result: Promise<T>
          try {
            result = Promise.resolve(fn())
          } catch (err) {
            result = Promise.reject(err)
          }
          // Free the slot before settling, so a caller that awaits the result sees the
          // host's counts already updated.
          result.then(
            (value) => {
              release(key, hostState)
              resolve(value)
            },
            (err: unknown) => {
              release(key, hostState)
              reject(err)
            },
          )
        }

        if (hostState.active < maxPerHost) {
          hostState.active += 1
          execute()
          return
        }

        const onAbort = (): void => {
          unlink(hostState, waiter)
          reject(signal?.reason)
        }
        const waiter: Waiter = {
          next: undefined,
          prev: undefined,
          start: () => {
            signal?.removeEventListener('abort', onAbort)
            execute()
          },
        }
        signal?.addEventListener('abort', onAbort, { once: true })
        enqueue(hostState, waiter)
      })
    },
  }
}
