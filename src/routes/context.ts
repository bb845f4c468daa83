import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Config } from '../config/load.js'
import type { ImageSource } from '../fetching/image-source.js'
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
 * stream closes as soon as its body has been read, long before the response.
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
      if (!res.writableEnded) gone()
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
  { config, state }: RouteContext,
  request: FastifyRequest,
  reply: FastifyReply,
  handle: (signals: RequestSignals) => Promise<FastifyReply>,
): Promise<FastifyReply> {
  const leave = state.enter()
  const signals = requestSignals(request, reply, config.REQUEST_DEADLINE_MS)
  try {
    return await handle(signals)
  } catch (err) {
    if (signals.clientGone.aborted) return endAbandoned(request, reply)
    throw err
  } finally {
    signals.dispose()
    leave()
  }
}

/**
 * The end of a request whose client went away first: what was still waiting was dropped
 * (and counted by stage in nima_abandoned_total), so log it once and answer 499 Client
 * Closed Request, which nobody reads, rather than an error that would count as a failure.
 */
export function endAbandoned(request: FastifyRequest, reply: FastifyReply, details: Record<string, unknown> = {}): FastifyReply {
  request.log.info({ ...details, reason: 'client closed the connection' }, 'request abandoned by its client')
  return reply.code(499).send()
}
