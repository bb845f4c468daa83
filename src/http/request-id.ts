import { randomUUID } from 'node:crypto'
import type { IncomingHttpHeaders } from 'node:http'

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/

/**
 * A request's id: the caller's x-request-id when it is sane, otherwise a fresh one. The
 * same rule serves fastify's genReqId and the answers written below fastify (parser
 * errors, refused expectations), so a client can always match an answer to its log line.
 */
export function requestIdFrom(headers: IncomingHttpHeaders): string {
  const incoming = headers['x-request-id']
  return typeof incoming === 'string' && REQUEST_ID.test(incoming) ? incoming : randomUUID()
}
