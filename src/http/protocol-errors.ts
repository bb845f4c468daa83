import { randomUUID } from 'node:crypto'
import { STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { FastifyBaseLogger, FastifyInstance } from 'fastify'
import { ERROR_TABLE, NimaError, type ErrorCode } from '../errors.js'
import type { Metrics } from '../metrics/metrics.js'
import { requestIdFrom } from './request-id.js'

/**
 * Answers for requests that fail below fastify's routing, in the documented shape
 * `{error: {code, message, requestId}}`: Node's HTTP parser errors and receive timeouts
 * (the server's 'clientError'), an `Expect` other than 100-continue ('checkExpectation')
 * and a missing Host header (Node's own check is off so that the answer is ours).
 */

/** The status written on a socket by `clientErrorHandler`, which then closes it. */
const kAnsweredStatus = Symbol('nima-serve.answeredStatus')
type MarkedSocket = Socket & { [kAnsweredStatus]?: number }

/** Node's parser errors with an answer of their own; every other one is a malformed request. */
const BY_NODE_CODE: Readonly<Record<string, ErrorCode>> = {
  ERR_HTTP_REQUEST_TIMEOUT: 'NIMA_REQUEST_TIMEOUT',
  HPE_HEADER_OVERFLOW: 'NIMA_HEADERS_TOO_LARGE',
}

/**
 * The status the server already answered on this socket below fastify (and then closed
 * it), if it did: a request whose connection closed for that reason was not abandoned by
 * its client, and has had its answer.
 */
export function answeredStatus(socket: Socket | null | undefined): number | undefined {
  return (socket as MarkedSocket | null | undefined)?.[kAnsweredStatus]
}

/**
 * The response under way on a socket, if a request got that far. Node keeps it as
 * `_httpMessage` and its own clientError fallback reads it the same way; there is no
 * public accessor.
 */
function responseOn(socket: Socket): ServerResponse | undefined {
  return (socket as Socket & { _httpMessage?: ServerResponse | null })._httpMessage ?? undefined
}

function errorBody(code: ErrorCode, message: string, requestId: string): string {
  return JSON.stringify({ error: { code, message, requestId } })
}

/**
 * fastify's `clientErrorHandler`. A connection the client closed or reset mid-request is
 * only closed: nobody is left to read an answer (a request under way is counted as
 * abandoned by whatever was reading its body). Otherwise the answer is written straight on
 * the socket, unless a response has already begun there, and the socket is closed, as
 * Node does: the parser cannot go on after an error.
 */
export function clientErrorHandler(opts: { metrics: Metrics; bodyTimeoutMs: number }) {
  // fastify calls it bound to the instance, whose logger exists only once it is built.
  return function onClientError(this: FastifyInstance, err: Error & { code?: string }, socket: Socket): void {
    if (err.code === 'ECONNRESET' || err.code === 'HPE_INVALID_EOF_STATE' || socket.destroyed) {
      socket.destroy()
      return
    }
    const code = BY_NODE_CODE[err.code ?? ''] ?? 'NIMA_MALFORMED_REQUEST'
    const { status } = ERROR_TABLE[code]
    const res = responseOn(socket)
    const header = res?.getHeader('x-request-id')
    const requestId = typeof header === 'string' ? header : randomUUID()
    const message =
      code === 'NIMA_REQUEST_TIMEOUT'
        ? `the request was not received within BODY_TIMEOUT_MS (${opts.bodyTimeoutMs} ms)`
        : `${ERROR_TABLE[code].message}: ${err.message}`
    ;(socket as MarkedSocket)[kAnsweredStatus] = status
    if (socket.writable && !res?.headersSent) {
      const body = errorBody(code, message, requestId)
      socket.write(
        `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\ncontent-type: application/json; charset=utf-8\r\n` +
          `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\nx-request-id: ${requestId}\r\n\r\n${body}`,
      )
      opts.metrics.errors.inc({ code })
    }
    this.log.info({ reqId: requestId, code, reason: err.code, requestStarted: res !== undefined }, 'request refused before routing')
    socket.destroy()
  }
}

/** The server's 'checkExpectation' listener: Node calls it instead of routing the request. */
export function expectationHandler(opts: { metrics: Metrics; log: FastifyBaseLogger }) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    const requestId = requestIdFrom(req.headers)
    const code = 'NIMA_EXPECTATION_FAILED'
    const body = errorBody(code, `Expect: ${req.headers.expect} is not supported; only 100-continue is`, requestId)
    opts.metrics.errors.inc({ code })
    opts.log.info({ reqId: requestId, code, expect: req.headers.expect }, 'request refused')
    // The body, if any, is never read: close rather than wait for it.
    res.writeHead(ERROR_TABLE[code].status, {
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(body),
      connection: 'close',
      'x-request-id': requestId,
    })
    res.end(body)
  }
}

/** HTTP/1.1 requires Host (RFC 9112 §3.2); Node's check answers with an empty body, so it is off and this one runs instead. */
export function checkHostHeader(req: IncomingMessage): void {
  if (req.httpVersion === '1.1' && req.headers.host === undefined) {
    throw new NimaError('NIMA_MALFORMED_REQUEST', 'an HTTP/1.1 request needs a Host header')
  }
}
