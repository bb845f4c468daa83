import { NimaError } from '../../errors.js'

/**
 * The binary tensor data extension's framing (Triton's `binary_tensor_data`, also in
 * KServe): a body is a JSON object, `Inference-Header-Content-Length` bytes long, followed
 * by the raw data of each binary tensor, back to back, in the order the JSON lists them.
 * Without the header the whole body is JSON.
 */
export const HEADER_LENGTH = 'inference-header-content-length'

/** A request body split into its JSON part and the binary data after it. */
export interface SplitBody {
  json: Buffer
  binary: Buffer
}

/**
 * Splits `body` at the length the header gives. `maxJsonBytes` bounds the JSON part,
 * which is parsed into objects many times its size (the binary part never is).
 */
export function splitBody(body: Buffer, headerLength: string | string[] | undefined, maxJsonBytes: number): SplitBody {
  if (headerLength === undefined) {
    if (body.length > maxJsonBytes) {
      throw new NimaError(
        'NIMA_PAYLOAD_TOO_LARGE',
        `a JSON inference request may be at most ${maxJsonBytes} bytes (BODY_LIMIT_BYTES); send large tensors as binary data (${HEADER_LENGTH})`,
      )
    }
    return { json: body, binary: body.subarray(body.length) }
  }
  const text = Array.isArray(headerLength) ? headerLength.join(',') : headerLength
  const n = /^\d{1,15}$/.test(text.trim()) ? Number(text.trim()) : Number.NaN
  if (!Number.isSafeInteger(n) || n < 2 || n > body.length) {
    throw new NimaError(
      'NIMA_INVALID_REQUEST',
      `Inference-Header-Content-Length must be the length of the JSON at the start of the body: an integer from 2 to the body's ${body.length} bytes, got ${JSON.stringify(text)}`,
    )
  }
  if (n > maxJsonBytes) throw new NimaError('NIMA_PAYLOAD_TOO_LARGE', `the JSON part of an inference request may be at most ${maxJsonBytes} bytes (BODY_LIMIT_BYTES), got ${n}`)
  return { json: body.subarray(0, n), binary: body.subarray(n) }
}

/** Reads the binary part in order, one tensor at a time; what is left over is an error. */
export class BinaryReader {
  readonly #data: Buffer
  #offset = 0

  constructor(data: Buffer) {
    this.#data = data
  }

  /** The next `size` bytes, for the input `name`. */
  take(size: number, name: string): Buffer {
    if (size > this.#data.length - this.#offset) {
      throw new NimaError(
        'NIMA_INVALID_REQUEST',
        `input ${JSON.stringify(name)} declares binary_data_size ${size}, but only ${this.#data.length - this.#offset} bytes of binary data are left after the JSON`,
      )
    }
    const out = this.#data.subarray(this.#offset, this.#offset + size)
    this.#offset += size
    return out
  }

  /** Every byte after the JSON must belong to an input: a miscounted header shows up here. */
  finish(): void {
    const left = this.#data.length - this.#offset
    if (left !== 0) {
      throw new NimaError(
        'NIMA_INVALID_REQUEST',
        `${left} bytes after the JSON belong to no input: the binary_data_size of the inputs add up to ${this.#offset}, the body has ${this.#data.length} after Inference-Header-Content-Length`,
      )
    }
  }
}

/** A response body: JSON alone, or JSON followed by binary outputs (with its header length). */
export function frameResponse(json: unknown, binary: readonly Buffer[]): { body: Buffer; headerLength: number } {
  const head = Buffer.from(JSON.stringify(json), 'utf8')
  return { body: Buffer.concat([head, ...binary]), headerLength: head.length }
}
