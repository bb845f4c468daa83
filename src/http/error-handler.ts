import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { ERROR_TABLE, NimaError, isNimaError, type ErrorCode } from '../errors.js'
import type { Metrics } from '../metrics/metrics.js'

/**
 * Turns every error into `{error: {code, message, requestId}}` with the right status.
 * Fastify's and @fastify/multipart's own errors map onto our codes by their status;
 * anything unexpected becomes a 500 whose details stay in the log, not the response.
 */
export function toNimaError(err: unknown): NimaError {
  if (isNimaError(err)) return err
  const e = err as Partial<FastifyError>
  if (e.validation) {
    const where = e.validationContext ?? 'request'
    return new NimaError('NIMA_INVALID_REQUEST', `${where}${e.message?.startsWith(where) ? e.message.slice(where.length) : ` ${e.message}`}`)
  }
  const byStatus: Record<number, ErrorCode> = {
    400: 'NIMA_INVALID_REQUEST',
    406: 'NIMA_UNSUPPORTED_MEDIA_TYPE',
    413: 'NIMA_PAYLOAD_TOO_LARGE',
    415: 'NIMA_UNSUPPORTED_MEDIA_TYPE',
  }
  const code = e.statusCode !== undefined ? byStatus[e.statusCode] : undefined
  if (code) {
    const message = code === 'NIMA_UNSUPPORTED_MEDIA_TYPE' && e.statusCode === 415 ? `${ERROR_TABLE[code].message}: ${e.message}` : (e.message ?? '')
    return new NimaError(code, message, { cause: err })
  }
  return new NimaError('NIMA_INTERNAL', undefined, { cause: err })
}

export function sendError(reply: FastifyReply, request: FastifyRequest, err: NimaError, metrics: Metrics): FastifyReply {
  metrics.errors.inc({ code: err.code })
  return reply
    .code(err.statusCode)
    .headers(err.headers)
    .send({ error: { code: err.code, message: err.message, requestId: String(request.id) } })
}

export default fp(
  async function errorHandler(app: FastifyInstance, opts: { metrics: Metrics }) {
    app.setErrorHandler((err, request, reply) => {
      const nima = toNimaError(err)
      if (nima.code === 'NIMA_INTERNAL') request.log.error({ err }, 'unhandled error')
      else request.log.info({ code: nima.code, reason: nima.message }, 'request refused')
      return sendError(reply, request, nima, opts.metrics)
    })
    app.setNotFoundHandler((request, reply) =>
      sendError(reply, request, new NimaError('NIMA_NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}`), opts.metrics),
    )
  },
  { name: 'nima-error-handler', fastify: '5.x' },
)
