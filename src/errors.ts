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
