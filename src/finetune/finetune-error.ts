import { kFailureKind } from '../errors.js'

/**
 * An expected failure of fine-tuning or label handling (no labels, unknown base model,
 * undecodable image, bad option): the CLI prints its message without a stack.
 */
const kFinetuneError = Symbol.for('nima-serve.finetune-error')

export class FinetuneError extends Error {
  override name = 'FinetuneError'
  readonly usage: boolean
  readonly [kFinetuneError] = true

  get [kFailureKind](): 'usage' | 'failed' {
    return this.usage ? 'usage' : 'failed'
  }

  constructor(message: string, options: { cause?: unknown; usage?: boolean } = {}) {
    super(message, { cause: options.cause })
    this.usage = options.usage ?? false
  }
}

export function isFinetuneError(value: unknown): value is FinetuneError {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[kFinetuneError] === true
}
