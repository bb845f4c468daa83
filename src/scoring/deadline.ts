import { NimaError } from '../errors.js'

/** Rejects with NIMA_DEADLINE_EXCEEDED if `work` is not done by the time `signal` aborts. */
export function withDeadline<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(deadlineError())
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(deadlineError())
    signal.addEventListener('abort', onAbort, { once: true })
    work.then(
      (v) => {
        signal.removeEventListener('abort', onAbort)
        resolve(v)
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort)
        reject(e)
      },
    )
  })
}

export function deadlineError(): NimaError {
  return new NimaError('NIMA_DEADLINE_EXCEEDED', undefined, { headers: { 'retry-after': '1' } })
}

/**
 * The abort reason of a request whose client closed its connection before the response.
 * Its code is NIMA_DEADLINE_EXCEEDED (the client's own deadline is what usually passed),
 * but it is not meant to be sent: nobody is left to read it. Routes recognise it with
 * `isClientGone` and count the dropped work instead of an error.
 */
export class ClientGoneError extends NimaError {
  constructor() {
    super('NIMA_DEADLINE_EXCEEDED', 'the client closed the connection before the response was ready')
    this.name = 'ClientGoneError'
  }
}

export function isClientGone(value: unknown): value is ClientGoneError {
  return value instanceof ClientGoneError
}

/** The signals one request's work honours, and how it stops watching them. */
export interface RequestSignals {
  /** Aborts `deadlineMs` after the start, with a NIMA_DEADLINE_EXCEEDED reason. */
  readonly deadline: AbortSignal
  /** Aborts when the client goes away before the response, with a ClientGoneError reason. */
  readonly clientGone: AbortSignal
  /** Either of the two: what fetches, decode slots and batcher queues are given. */
  readonly signal: AbortSignal
  /** Clears the deadline timer and stops watching the client; call once the request is done. */
  dispose(): void
}

/**
 * Signals for one request. `watchClient` starts watching the connection, calls `gone`
 * when the client leaves (at once if it already has), and returns how to stop watching.
 */
export function createRequestSignals(deadlineMs: number, watchClient: (gone: () => void) => () => void): RequestSignals {
  const deadline = new AbortController()
  const client = new AbortController()
  // One controller that either cause aborts (the first reason wins): plain controllers
  // and no AbortSignal.any bookkeeping on every request.
  const either = new AbortController()
  // A timer of our own rather than AbortSignal.timeout: the reason is our error, and
  // the timer goes away with the request instead of outliving it.
  const timer = setTimeout(() => {
    const reason = deadlineError()
    deadline.abort(reason)
    if (!either.signal.aborted) either.abort(reason)
  }, deadlineMs)
  timer.unref()
  const unwatch = watchClient(() => {
    const reason = new ClientGoneError()
    client.abort(reason)
    if (!either.signal.aborted) either.abort(reason)
  })
  let disposed = false
  return {
    deadline: deadline.signal,
    clientGone: client.signal,
    signal: either.signal,
    dispose() {
      if (disposed) return
      disposed = true
      clearTimeout(timer)
      unwatch()
    },
  }
}
