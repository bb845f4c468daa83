import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Config } from '../config/load.js'
import type { ImageSource } from '../fetching/image-source.js'
import { endAbandoned } from '../http/abandoned.js'
import { answeredStatus } from '../http/protocol-errors.js'
import type { Metrics } from '../metrics/metrics.js'
import { createRequestSignals, type RequestSignals } from '../scoring/deadline.js'
import type { ServiceState } from '../service-state.js'
import type { ThreadPlan } from '../threads/resolve-threads.js'

/** What every route plugin is registered with: explicit dependencies, no globals. */
export interface RouteContext {
  config: Config
  state: ServiceState
  metrics: Metrics
  /** Where URL inputs come from (fetch under the per-host limit, observed). */
  images: ImageSource
  /** The thread plan the service runs with (absent in apps built without one). */
  threads?: ThreadPlan | undefined
}

export function parseModelList(value: string | undefined): string[] | undefined {
  return value === undefined ? undefined : value.split(',').filter((x) => x.length > 0)
}

/**
 * The deadline (`deadlineMs`) and client-gone signals of one scoring request; call
 * `dispose()` when the handler is done.
 *
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
    const onClose = () => {
      if (!res.writableEnded && answeredStatus(socket) === undefined) gone()
    }
    res.once('close', onClose)
    socket?.once('close', onClose)
    return () => {
      res.off('close', onClose)
      socket?.off('close', onClose)
    }
  })
}

/**
 * One scoring request's lifecycle: counted in flight, given its deadline and client-gone
 * signals (released when it ends, however it ends), and answered by `endAbandoned` when
 * it failed because its client had left.
 */
export async function scoringRequest(
  { config, state, metrics }: RouteContext,
  request: FastifyRequest,
  reply: FastifyReply,
  handle: (signals: RequestSignals) => Promise<FastifyReply>,
): Promise<FastifyReply> {
  const leave = state.enter()
  const signals = requestSignals(request, reply, config.REQUEST_DEADLINE_MS)
  try {
    return await handle(signals)
  } catch (err) {
    if (signals.clientGone.aborted) return endAbandoned(request, reply, metrics)
    throw err
  } finally {
    signals.dispose()
    leave()
  }
}
