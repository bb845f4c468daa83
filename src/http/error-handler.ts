import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { NimaError, toNimaError } from '../errors.js'
import type { Metrics } from '../metrics/metrics.js'
import { endAbandoned } from './request-lifecycle.js'
import { answeredStatus } from './protocol-errors.js'

/**
 * Counts a failure a client will see and logs it when it is a bug (with its stack): the
 * one rule for a whole request (the handler below) and for one image of a /rank, whose
 * failures are answered inside a 200.
 */
export function countFailure(request: FastifyRequest, metrics: Metrics, err: unknown, nima: NimaError, details: Record<string, unknown> = {}): void {
  metrics.errors.inc({ code: nima.code })
  if (nima.code === 'NIMA_INTERNAL') request.log.error({ err, ...details }, 'unhandled error')
}

/** Counts `err` and answers it as `{error: {code, message, requestId}}`. */
export function sendError(reply: FastifyReply, request: FastifyRequest, err: NimaError, metrics: Metrics): FastifyReply {
  metrics.errors.inc({ code: err.code })
  return reply
    .code(err.statusCode)
    .headers(err.headers)
    .send({ error: { code: err.code, message: err.message, requestId: String(request.id) } })
}

/** How an error reaches the client once it is a NimaError: our shape by default; a protocol's own shape in its routes (src/routes/oip/). */
export type ErrorSender = (reply: FastifyReply, request: FastifyRequest, err: NimaError, metrics: Metrics) => FastifyReply

/**
 * Every failed request, whatever route: a connection already answered or gone is not
 * answered again, a client gone mid-upload ends as abandoned (499), anything else becomes
 * a NimaError, logged (details of a 500 only in the log) and sent by `send`.
 */
export function handleError(err: unknown, request: FastifyRequest, reply: FastifyReply, metrics: Metrics, send: ErrorSender = sendError): FastifyReply {
  // Reading the body failed because the connection is gone: either the server closed it
  // after answering below fastify (a receive timeout, a parse error; answered and
  // counted there), or the client left mid-upload, which is no error of the request.
  const socket = request.raw.socket as typeof request.raw.socket | null
  const answered = answeredStatus(socket)
  if (answered !== undefined) return reply.code(answered).send()
  if (!request.raw.complete && (reply.raw.destroyed || socket?.destroyed)) return endAbandoned(request, reply, metrics)
  const nima = toNimaError(err)
  if (nima.code === 'NIMA_INTERNAL') request.log.error({ err }, 'unhandled error')
  else request.log.info({ code: nima.code, reason: nima.message }, 'request refused')
  return send(reply, request, nima, metrics)
}

export default fp(
  async function errorHandler(app: FastifyInstance, opts: { metrics: Metrics }) {
    app.setErrorHandler((err, request, reply) => handleError(err, request, reply, opts.metrics))
    app.setNotFoundHandler((request, reply) =>
      sendError(reply, request, new NimaError('NIMA_NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}`), opts.metrics),
    )
  },
  { name: 'nima-error-handler', fastify: '5.x' },
)
