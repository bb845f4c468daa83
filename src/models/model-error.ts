import { kFailureKind } from '../errors.js'

/**
 * Errors of the model tooling (weights, conversion, download, install). These never reach
 * an HTTP client, so they live apart from the service's error table in src/errors.ts; the
 * CLI prints their message alone, without a stack, because they describe an expected
 * situation (offline, corrupted download, wrong file) and not a bug.
 */
export const MODEL_ERROR_CODES = [
  'MODEL_WEIGHTS_INVALID',
  'MODEL_FILE_UNREADABLE',
  'MODEL_DOWNLOAD_FAILED',
  'MODEL_OFFLINE',
  'MODEL_INTEGRITY_FAILED',
  'MODEL_INSTALL_FAILED',
  'MODEL_PRECISION_CHECK_FAILED',
  'MODEL_CONVERSION_PROOF_FAILED',
  'MODEL_USAGE',
  'MODEL_CONVERTER_UNAVAILABLE',
] as const

export type ModelErrorCode = (typeof MODEL_ERROR_CODES)[number]

const kModelError = Symbol.for('nima-serve.model-error')

export class ModelError extends Error {
  readonly code: ModelErrorCode
  // Branded like NimaError so the check survives duplicate module copies.
  readonly [kModelError] = true

  get [kFailureKind](): 'usage' | 'failed' {
    return this.code === 'MODEL_USAGE' ? 'usage' : 'failed'
  }

  constructor(code: ModelErrorCode, message: string, options: { cause?: unknown } = {}) {
    super(message, { cause: options.cause })
    this.name = 'ModelError'
    this.code = code
  }
}

export function isModelError(value: unknown): value is ModelError {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[kModelError] === true
}
