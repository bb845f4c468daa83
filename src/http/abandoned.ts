import type { FastifyReply, FastifyRequest } from 'fastify'
import type { Metrics } from '../metrics/metrics.js'

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
