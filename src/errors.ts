import type { FastifyError } from 'fastify'

/**
 * Every error a client can see, in one table: a stable code, the HTTP status and a
 * default message. Clients match on `code`, never on message text.
 */
export const ERROR_TABLE = {
  NIMA_INVALID_REQUEST: { status: 400, message: 'The request is invalid' },
  NIMA_MALFORMED_REQUEST: { status: 400, message: 'The HTTP request could not be parsed' },
  NIMA_MISSING_IMAGE: { status: 400, message: 'No image was supplied' },
  NIMA_UNKNOWN_MODEL: { status: 400, message: 'Unknown model' },
  NIMA_TOO_MANY_IMAGES: { status: 400, message: 'Too many images in one request' },
  NIMA_URL_INVALID: { status: 400, message: 'The image URL is invalid' },
  NIMA_URL_BLOCKED: { status: 400, message: 'The image URL points to a refused address' },
  NIMA_UNAUTHORIZED: { status: 401, message: 'A valid API key is required' },
  NIMA_NOT_FOUND: { status: 404, message: 'Route not found' },
  NIMA_MODEL_NOT_FOUND: { status: 404, message: 'No such model (or version) is loaded' },
  NIMA_REQUEST_TIMEOUT: { status: 408, message: 'The request was not received in time' },
  NIMA_PAYLOAD_TOO_LARGE: { status: 413, message: 'The request body is too large' },
  NIMA_IMAGE_TOO_LARGE: { status: 413, message: 'The image has too many pixels' },
  NIMA_URL_TOO_LARGE: { status: 413, message: 'The image behind the URL is too large' },
  NIMA_EXPLANATION_UNAVAILABLE: { status: 409, message: 'The model file has no feature-map output, so it cannot be explained' },
  NIMA_NOT_CALIBRATED: { status: 409, message: 'No calibration (SCORE_CALIBRATION) covers these models and weights' },
  NIMA_UNSUPPORTED_MEDIA_TYPE: { status: 415, message: 'Unsupported media type' },
  NIMA_EXPECTATION_FAILED: { status: 417, message: 'The Expect header cannot be met' },
  NIMA_UNDECODABLE_IMAGE: { status: 422, message: 'The image could not be decoded' },
  NIMA_TOO_MANY_SCANS: { status: 422, message: 'The JPEG image has more scans than JPEG_MAX_SCANS allows' },
  NIMA_DECODE_TIMEOUT: { status: 422, message: 'Decoding the image took longer than DECODE_TIMEOUT_MS allows' },
  NIMA_RATE_LIMITED: { status: 429, message: 'Too many requests' },
  NIMA_HEADERS_TOO_LARGE: { status: 431, message: 'The request headers are too large' },
  NIMA_CLIENT_GONE: { status: 499, message: 'The client closed the connection before the response was ready' },
  NIMA_INTERNAL: { status: 500, message: 'Internal server error' },
  NIMA_UPSTREAM_FAILED: { status: 502, message: 'Fetching the image failed' },
  NIMA_TOO_MANY_REDIRECTS: { status: 502, message: 'The image URL redirected too many times' },
  NIMA_NOT_READY: { status: 503, message: 'The service is not ready' },
  NIMA_RELOAD_FAILED: { status: 503, message: 'The models could not be reloaded; the previous ones keep serving' },
  NIMA_OVERLOADED: { status: 503, message: 'The service is overloaded, retry later' },
  NIMA_DEADLINE_EXCEEDED: { status: 503, message: 'The request did not finish within its deadline' },
  NIMA_UPSTREAM_TIMEOUT: { status: 504, message: 'Fetching the image timed out' },
} as const satisfies Record<string, { status: number; message: string }>

export type ErrorCode = keyof typeof ERROR_TABLE

const kNimaError = Symbol.for('nima-serve.error')

export interface NimaErrorOptions {
  cause?: unknown
  /** Extra response headers, e.g. Retry-After on overload. */
  headers?: Record<string, string>
}

export class NimaError extends Error {
  readonly code: ErrorCode
  readonly statusCode: number
  readonly headers: Readonly<Record<string, string>>
  // Branded so `isNimaError` works across duplicate module copies (undici's trick).
  readonly [kNimaError] = true

  constructor(code: ErrorCode, message?: string, options: NimaErrorOptions = {}) {
    super(message ?? ERROR_TABLE[code].message, { cause: options.cause })
    this.name = 'NimaError'
    this.code = code
    this.statusCode = ERROR_TABLE[code].status
    this.headers = options.headers ?? {}
  }
}

export function isNimaError(value: unknown): value is NimaError {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[kNimaError] === true
}

export const errorCodes = Object.keys(ERROR_TABLE) as ErrorCode[]

/** fastify errors raised before routing whose status alone says too little. */
const BY_FASTIFY_CODE: Readonly<Record<string, ErrorCode>> = {
  FST_ERR_BAD_URL: 'NIMA_MALFORMED_REQUEST',
  FST_ERR_MAX_PARAM_LENGTH: 'NIMA_MALFORMED_REQUEST',
}

/**
 * Any error as the client's error. Fastify's and @fastify/multipart's own errors map onto
 * our codes by their status; anything unexpected becomes NIMA_INTERNAL, whose details stay
 * in the log, not the response. The HTTP error handler, /rank's per-image failures and the
 * batch CLI's failed lines all go through it.
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

/** The answer to a request past its deadline: retry soon, the service is busy. */
export function deadlineError(): NimaError {
  return new NimaError('NIMA_DEADLINE_EXCEEDED', undefined, { headers: { 'retry-after': '1' } })
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

/**
 * How a command-line run (and the service's start-up) ends on an error, one table for all:
 * a bad option or configuration exits 2, an expected failure (offline, a missing file, a
 * bad model file) exits 1 with its message alone, and anything else is a bug: exit 1 with
 * its stack. docs/errors.md lists the codes.
 */
export const EXIT_CODES = { usage: 2, failed: 1, bug: 1 } as const

export type FailureKind = keyof typeof EXIT_CODES

/**
 * The brand an error class carries to say which kind of failure it is (a getter where it
 * depends on the instance). Branding, not `instanceof`, so that this table needs no import
 * of the classes, which live in the layers above (config, models, labels, batch, cli).
 */
export const kFailureKind = Symbol.for('nima-serve.failure-kind')

export interface FailureBrand {
  readonly [kFailureKind]: Exclude<FailureKind, 'bug'>
}

/** The kind of failure `err` is: its brand, `failed` for a client error or a refused system call, else `bug`. */
export function failureKind(err: unknown): FailureKind {
  if (typeof err !== 'object' || err === null) return 'bug'
  const brand = (err as Partial<FailureBrand>)[kFailureKind]
  if (brand !== undefined) return brand
  if (isNimaError(err)) return 'failed'
  // A file or socket the operating system refused (ENOENT, EACCES, ...): its message says which.
  const e = err as NodeJS.ErrnoException
  if (typeof e.code === 'string' && typeof e.syscall === 'string') return 'failed'
  return 'bug'
}
