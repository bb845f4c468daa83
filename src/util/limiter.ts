/**
 * A FIFO concurrency limit: at most `limit` tasks run at once, the others start strictly
 * in arrival order (a finishing task hands its slot straight to the oldest waiter, so a
 * newcomer can never overtake), and a waiting task whose AbortSignal fires leaves the
 * line and rejects with the signal's reason without ever running.
 */
export interface Limiter {
  run<T>(fn: () => T | PromiseLike<T>, signal?: AbortSignal): Promise<T>
  /** Tasks running now. */
  readonly active: number
  /** Tasks waiting for a slot. */
  readonly pending: number
  readonly limit: number
}

interface Waiter {
  start(): void
  next: Waiter | undefined
  prev: Waiter | undefined
}

/**
 * @param limit integer ≥ 1: how many tasks may run at once.
 * @param onIdle called whenever the last running task ends with nobody waiting (the
 *   per-host limiter drops idle hosts with it).
 */
export function createLimiter(limit: number, onIdle?: () => void): Limiter {
  if (!Number.isInteger(limit) || limit < 1) throw new TypeError(`createLimiter: limit must be an integer ≥ 1, got ${String(limit)}`)
  let active = 0
  let pending = 0
  // A doubly linked list: an aborted waiter leaves in O(1) from anywhere in the line.
  let head: Waiter | undefined
  let tail: Waiter | undefined

  const enqueue = (waiter: Waiter): void => {
    waiter.prev = tail
    if (tail) tail.next = waiter
    else head = waiter
    tail = waiter
    pending += 1
  }

  const unlink = (waiter: Waiter): void => {
    if (waiter.prev) waiter.prev.next = waiter.next
    else head = waiter.next
    if (waiter.next) waiter.next.prev = waiter.prev
    else tail = waiter.prev
    waiter.next = waiter.prev = undefined
    pending -= 1
  }

  const release = (): void => {
    const next = head
    if (next) {
      // The slot passes straight to the oldest waiter: `active` does not change.
      unlink(next)
      next.start()
      return
    }
    active -= 1
    if (active === 0) onIdle?.()
  }

  return {
    limit,
    get active() {
      return active
    },
    get pending() {
      return pending
    },

    run<T>(fn: () => T | PromiseLike<T>, signal?: AbortSignal): Promise<T> {
      if (signal?.aborted) return Promise.reject(signal.reason)
      return new Promise<T>((resolve, reject) => {
        const execute = (): void => {
          let result: Promise<T>
          try {
            result = Promise.resolve(fn())
          } catch (err) {
            result = Promise.reject(err)
          }
          // Free the slot before settling, so a caller that awaits the result sees the
          // counts already updated.
          result.then(
            (value) => {
              release()
              resolve(value)
            },
            (err: unknown) => {
              release()
              reject(err)
            },
          )
        }

        if (active < limit) {
          active += 1
          execute()
          return
        }

        const onAbort = (): void => {
          unlink(waiter)
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
        enqueue(waiter)
      })
    },
  }
}
