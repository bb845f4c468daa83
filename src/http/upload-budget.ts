import type { IncomingHttpHeaders } from 'node:http'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { NimaError } from '../errors.js'
import { whenRequestEnds } from './request-end.js'

/**
 * The most bytes a request's body can make the service hold: its declared Content-Length
 * (capped at the body limit, past which it is refused anyway), the body limit itself for
 * a chunked body (its size is unknown until it ends), 0 without a body.
 */
export function bodyReservation(headers: IncomingHttpHeaders, bodyLimit: number): number {
  if (headers['transfer-encoding'] !== undefined) return bodyLimit
  const declared = Number(headers['content-length'] ?? 0)
  return Number.isSafeInteger(declared) && declared > 0 ? Math.min(declared, bodyLimit) : 0
}

/** Whether the request has a body to read (the same test as bodyReservation's). */
export function carriesBody(headers: IncomingHttpHeaders): boolean {
  return bodyReservation(headers, 1) > 0
}

/** Whether the client waits for 100 Continue before sending its body (Node's own test of the Expect header). */
export function expectsContinue(headers: IncomingHttpHeaders): boolean {
  return /(?:^|\W)100-continue(?:$|\W)/i.test(headers.expect ?? '')
}

/**
 * Bytes reserved by the request bodies in flight, under one limit. A body reserves what it
 * may hold before its first byte is read and gives it back when its response closes, so
 * the sum of what uploads buffer never passes the limit, however slowly they arrive.
 */
export class UploadBudget {
  readonly limit: number
  #reserved = 0

  constructor(limit: number) {
    this.limit = limit
  }

  get reserved(): number {
    return this.#reserved
  }

  /** Reserves `bytes` and returns how to give them back (once; later calls do nothing), or undefined when they do not fit. */
  tryReserve(bytes: number): (() => void) | undefined {
    if (this.#reserved + bytes > this.limit) return undefined
    this.#reserved += bytes
    let released = false
    return () => {
      if (released) return
      released = true
      this.#reserved -= bytes
    }
  }
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The route takes larger bodies than BODY_LIMIT_BYTES: what one may reserve (image-body.ts). */
    uploadLimit?: number
  }
}

/**
 * Refuses a body up front, from its headers, when the uploads already in flight leave no
 * room for it: 503 NIMA_OVERLOADED with Retry-After, before a byte of it is buffered.
 * Node then reads the rest of the body and discards it (as after any early answer) rather
 * than closing at once: closing on unread bytes sends a TCP reset, and a client still
 * sending would lose the 503 (12 of 28 refused clients did in one run of bench/stalled-uploads.ts).
 * preParsing runs after authentication and rate limiting, so refused clients reserve nothing.
 * A client that sent `Expect: 100-continue` is told to continue here, once its body has
 * room, and not before (see the server's 'checkContinue' listener in app.ts): a refused
 * one never sends its body at all.
 */
export default fp(
  async function uploadBudget(app: FastifyInstance, { budget, bodyLimit }: { budget: UploadBudget; bodyLimit: number }) {
    app.addHook('preParsing', async (request, reply, payload) => {
      // A route that takes larger bodies than the service's limit says so in its config.
      const routeLimit = request.routeOptions.config?.uploadLimit
      const bytes = bodyReservation(request.headers, routeLimit ?? bodyLimit)
      if (bytes === 0) return payload
      const release = budget.tryReserve(bytes)
      if (!release) {
        throw new NimaError(
          'NIMA_OVERLOADED',
          `uploads in flight hold ${budget.reserved} of the ${budget.limit} bytes UPLOAD_BUDGET_BYTES allows; this body needs ${bytes} more`,
          { headers: { 'retry-after': '1' } },
        )
      }
      whenRequestEnds(request, reply, release)
      // The body is accepted: a client that waits for 100 Continue may send it now.
      if (expectsContinue(request.headers)) reply.raw.writeContinue()
      return payload
    })
  },
  { name: 'nima-upload-budget', fastify: '5.x' },
)
