import { AsyncResource } from 'node:async_hooks'

/**
 * A FIFO concurrency limit: at most `limit` tasks run at once, the others start strictly
 * in arrival order (a finishing task hands its slot straight to the oldest waiter, so a
 * newcomer can never overtake), and a waiting task whose AbortSignal fires leaves the
 * line and rejects with the signal's reason without ever running.
 *
 * A task may weigh more than one unit (`cost`): then `limit` is a budget (bytes of
 * memory, say) and the tasks running at once never weigh more than it together. The
 * oldest waiter still goes first: a light newcomer waits behind a heavy one rather
 * than starve it.
 *
 * A task that waited runs in the async context of its caller, not of the task whose end
 * let it start: what rides on that context (its request's trace, src/util/tracing.ts)
 * stays with it.
 */
export interface Limiter {
  /** @param cost units the task holds while it runs: an integer in 1..limit (default 1). */
  run<T>(fn: () => T | PromiseLike<T>, signal?: AbortSignal, cost?: number): Promise<T>
  /** Tasks running now. */
  readonly active: number
  /** Tasks waiting for a slot. */
  readonly pending: number
  /** Units held by the running tasks (equals `active` when every cost is 1). */
  readonly used: number
  readonly limit: number
}

interface Waiter {
  cost: number
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
  let used = 0
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

  // Free units pass straight to the oldest waiters, in order, as long as they fit:
  // nobody arriving later can take them first.
  const admit = (): void => {
    while (head && used + head.cost <= limit) {
      const next = head
      unlink(next)
      active += 1
      used += next.cost
      next.start()
    }
  }

  const release = (cost: number): void => {
    active -= 1
    used -= cost
    admit()
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
    get used() {
      return used
    },

    run<T>(fn: () => T | PromiseLike<T>, signal?: AbortSignal, cost = 1): Promise<T> {
      if (!Number.isInteger(cost) || cost < 1 || cost > limit) {
        return Promise.reject(new RangeError(`Limiter.run: cost must be an integer in 1..${limit} (the limit), got ${String(cost)}`))
      }
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
              release(cost)
              resolve(value)
            },
            (err: unknown) => {
              release(cost)
              reject(err)
            },
          )
        }

        if (!head && used + cost <= limit) {
          active += 1
          used += cost
          execute()
          return
        }

        const onAbort = (): void => {
          const wasHead = waiter === head
          unlink(waiter)
          reject(signal?.reason)
          // A heavy head leaving may let the lighter waiters behind it start.
          if (wasHead) admit()
        }
        // The caller's async context, to run the task in. Not AsyncResource.bind: it
        // redefines properties of the bound function, measured at about 38 µs a call
        // against 0.1 µs for this (bench/tracing.ts, "the off path").
        const caller = new AsyncResource('nima-serve:limiter')
        const waiter: Waiter = {
          cost,
          next: undefined,
          prev: undefined,
          start: () => {
            signal?.removeEventListener('abort', onAbort)
            caller.runInAsyncScope(execute)
          },
        }
        signal?.addEventListener('abort', onAbort, { once: true })
        enqueue(waiter)
      })
    },
  }
}
