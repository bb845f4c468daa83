/**
 * The lifecycle of one scoring request at the HTTP edge, in one place: counted in flight,
 * given a deadline and a "client gone" signal, its dropped work counted as abandoned, and
 * answered 499 when its client left first. Below this module, scoring sees one AbortSignal
 * and nothing of HTTP.
 */
import type { FastifyReply, FastifyRequest, RequestPayload } from 'fastify'
import type { Config } from '../config/load.js'
import type { ImageSource, SourcedImage } from '../fetching/image-source.js'
import { NimaError, deadlineError } from '../errors.js'
import type { AbandonStage, Metrics } from '../metrics/metrics.js'
import type { Scorer } from '../scoring/scorer.js'
import type { ServiceState } from '../service-state.js'
import { answeredStatus } from './protocol-errors.js'
import { whenRequestEnds } from './request-end.js'
import { carriesBody } from './upload-budget.js'

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

/**
 * The abort reason of a request whose client closed its connection before the response.
 * It has a code of its own (NIMA_CLIENT_GONE, 499) so that it is never mistaken for a
 * deadline, but it is not meant to be sent: nobody is left to read it.
 */
export class ClientGoneError extends NimaError {
  constructor() {
    super('NIMA_CLIENT_GONE', 'the client closed the connection before the response was ready')
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

/**
 * The client is gone when the response or its socket closes before the response was
 * ended: that holds on keep-alive and one-shot connections alike (the socket outlives a
 * keep-alive response, so the response's own 'close' is the one that fires; the socket's
 * covers a pipelined request whose response is not attached to it yet). Neither
 * `request.signal` nor the request stream's 'close' will do: on Node 20 the request
 * stream closes as soon as its body has been read, long before the response. A socket the
 * server itself closed after answering below fastify (a receive timeout) is no client gone.
 */
function requestSignals(request: FastifyRequest, reply: FastifyReply, deadlineMs: number): RequestSignals {
  return createRequestSignals(deadlineMs, (gone) => {
    const res = reply.raw
    const socket = request.raw.socket as typeof request.raw.socket | null
    if (res.destroyed || socket?.destroyed) {
      gone()
      return () => {}
    }
    return whenRequestEnds(request, reply, () => {
      if (!res.writableEnded && answeredStatus(socket) === undefined) gone()
    })
  })
}

/**
 * Counts work dropped at `stage` because its client went away (`reason` is the request's
 * ClientGoneError); a deadline or any other failure is not abandonment and is not counted.
 */
export function countAbandoned(metrics: Pick<Metrics, 'abandoned'>, stage: AbandonStage, reason: unknown): void {
  if (isClientGone(reason)) metrics.abandoned.inc({ stage })
}

/**
 * An image URL a request fetches itself (past the score cache): aborted with the request,
 * NIMA_DEADLINE_EXCEEDED at its deadline, and counted as abandoned at 'fetch' when its
 * client left.
 */
export function fetchForRequest(images: ImageSource, metrics: Pick<Metrics, 'abandoned'>, url: string, signals: RequestSignals): Promise<SourcedImage> {
  return withDeadline(images.fetch(url, signals.signal), signals.deadline).catch((err: unknown) => {
    countAbandoned(metrics, 'fetch', err)
    throw err
  })
}

export interface LifecycleDeps {
  config: Pick<Config, 'REQUEST_DEADLINE_MS'>
  state: ServiceState
  metrics: Metrics
}

/**
 * What a request took on when its headers were in (holdScorerFromHeaders): given back when
 * the request ends unless scoringRequest has taken it over by then ('claimed'), which gives
 * it back itself once its work is done. A client gone mid-inference must not release the
 * lease under the running work: a model swap would dispose the sessions it runs on.
 */
interface Held {
  lease: ReturnType<ServiceState['acquireScorer']>
  leave: () => void
  state: 'held' | 'claimed' | 'ended'
}

const heldFromHeaders = new WeakMap<FastifyRequest, Held>()

/**
 * A preParsing hook for scoring routes (after authentication, the rate limit and the upload
 * budget): a request with a body is counted in flight and leases the scorer once its
 * headers are in, not once its body is. A client whose body is still arriving when the
 * service starts to drain (SIGTERM) chose this instance while it was ready; refusing it
 * then would make it upload the whole body again elsewhere, so it is served within the
 * grace period, like a request already scoring. A request whose headers come after
 * draining began holds nothing here and gets scoringRequest's 503 once its body is read;
 * so does a request without a body (the hook leaves GETs beside the scoring routes alone).
 * Given back when the request ends, however it ends (request-end.ts).
 */
export function holdScorerFromHeaders(state: ServiceState): (request: FastifyRequest, reply: FastifyReply, payload: RequestPayload) => Promise<RequestPayload> {
  return async (request, reply, payload) => {
    if (!state.ready || !carriesBody(request.headers)) return payload
    const lease = state.acquireScorer()
    const held: Held = { lease, leave: state.enter(), state: 'held' }
    heldFromHeaders.set(request, held)
    whenRequestEnds(request, reply, () => {
      if (held.state !== 'held') return
      held.state = 'ended'
      held.lease.release()
      held.leave()
    })
    return payload
  }
}

/**
 * One scoring request: counted in flight, given its deadline and client-gone signals and
 * a lease on the scorer in service (all released when it ends, however it ends, so a model
 * swap never takes the scorer from under it), and answered by `endAbandoned` when it
 * failed because its client had left. 503 while models load or the service drains, unless
 * the request already held the scorer from its headers (holdScorerFromHeaders).
 */
export async function scoringRequest(
  { config, state, metrics }: LifecycleDeps,
  request: FastifyRequest,
  reply: FastifyReply,
  handle: (signals: RequestSignals, scorer: Scorer) => Promise<FastifyReply>,
): Promise<FastifyReply> {
  // A hold its request outlived (it ended before this handler ran) is gone: start afresh.
  const found = heldFromHeaders.get(request)
  const held = found?.state === 'held' ? found : undefined
  if (held) held.state = 'claimed'
  const leave = held?.leave ?? state.enter()
  const signals = requestSignals(request, reply, config.REQUEST_DEADLINE_MS)
  let lease: ReturnType<ServiceState['acquireScorer']> | undefined
  try {
    lease = held?.lease ?? state.acquireScorer()
    return await handle(signals, lease.scorer)
  } catch (err) {
    if (signals.clientGone.aborted) return endAbandoned(request, reply, metrics)
    throw err
  } finally {
    lease?.release()
    signals.dispose()
    leave()
  }
}

/**
 * The end of a request whose client went away first: what was still waiting was dropped
 * (and counted by stage in nima_abandoned_total), so log it once and answer 499 Client
 * Closed Request, which nobody reads, rather than an error that would count as a failure.
 * A client that left before its body was all in is counted here, under stage "upload":
 * every abandoned request ends here, whichever reader of the body noticed.
 */
export function endAbandoned(request: FastifyRequest, reply: FastifyReply, metrics: Metrics, details: Record<string, unknown> = {}): FastifyReply {
  const midUpload = !request.raw.complete
  if (midUpload) metrics.abandoned.inc({ stage: 'upload' })
  request.log.info({ ...details, ...(midUpload ? { stage: 'upload' } : {}), reason: 'client closed the connection' }, 'request abandoned by its client')
  return reply.code(499).send()
}
