import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { ERROR_TABLE, NimaError, isNimaError, type ErrorCode } from '../errors.js'
import type { Metrics } from '../metrics/metrics.js'
import { deadlineError, endAbandoned } from './request-lifecycle.js'
import { answeredStatus } from './protocol-errors.js'

/** fastify errors raised before routing whose status alone says too little. */
const BY_FASTIFY_CODE: Readonly<Record<string, ErrorCode>> = {
  FST_ERR_BAD_URL: 'NIMA_MALFORMED_REQUEST',
  FST_ERR_MAX_PARAM_LENGTH: 'NIMA_MALFORMED_REQUEST',
}

/**
 * Turns every error into `{error: {code, message, requestId}}` with the right status.
 * Fastify's and @fastify/multipart's own errors map onto our codes by their status;
 * anything unexpected becomes a 500 whose details stay in the log, not the response.
 */
export function toNimaError(err: unknown): NimaError {
  if (isNimaError(err)) return err
  // A time limit that fired (AbortSignal.timeout's reason, or an abort carrying it) is a
  // deadline, not a bug: 503 with its code, never a 500.
  if (isTimeout(err)) return deadlineError()
  const e = err as Partial<FastifyError>
  if (e.validation) {
    const where = e.validationContext ?? 'request'
    return new NimaError('NIMA_INVALID_REQUEST', `${where}${e.message?.startsWith(where) ? e.message.slice(where.length) : ` ${e.message}`}`)
  }
  const byCode = e.code !== undefined ? BY_FASTIFY_CODE[e.code] : undefined
  if (byCode) return new NimaError(byCode, `${ERROR_TABLE[byCode].message}: ${e.message}`, { cause: err })
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

function isTimeout(err: unknown): boolean {
  const name = (err as { name?: unknown } | null)?.name
  if (name === 'TimeoutError') return true
  return name === 'AbortError' && (err as { cause?: { name?: unknown } }).cause?.name === 'TimeoutError'
}

/**
 * A multipart reader's failure as the client's error: busboy reports malformed bodies (no
 * boundary, cut short) as plain Errors; limits (which carry a status) and our own errors
 * map as any other.
 */
export function multipartError(err: unknown): NimaError {
  if (isNimaError(err) || (err as { statusCode?: number }).statusCode) return toNimaError(err)
  return new NimaError('NIMA_INVALID_REQUEST', `malformed multipart body: ${(err as Error).message}`, { cause: err })
}

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
