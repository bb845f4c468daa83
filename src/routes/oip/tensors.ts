import { endianness } from 'node:os'
import { NimaError } from '../../errors.js'
import { tensorSize, tensorValueRange, type TensorSpec } from '../../imaging/tensor.js'
import type { ScoreSummary } from '../../scoring/distribution.js'
import type { BinaryReader } from './binary-body.js'
import type { InferRequest, InferRequestInput, InferResponseOutput } from './schemas.js'
import { INPUT_IMAGE, INPUT_TENSOR, OUTPUT_DISTRIBUTION, OUTPUT_MEAN, OUTPUT_NAMES } from './signature.js'

/**
 * Open Inference Protocol tensors to and from what the service scores: the request's one
 * input as encoded images or as preprocessed rows, and the scores as output tensors. Every
 * count, size and value is checked here, before any image is decoded or any row queued.
 *
 * BYTES in JSON: each element is a string holding the image in base64 (standard or URL-safe
 * alphabet, padding optional), since JSON strings cannot carry arbitrary bytes. In binary
 * form each element is a 4-byte little-endian length and that many bytes, as the extension
 * defines it. FP32 in binary form is little-endian IEEE 754, row-major.
 */
export type ModelInput = { kind: 'image'; images: Buffer[] } | { kind: 'tensor'; rows: Float32Array[] }

export interface InputLimits {
  /** Most images (rows) in one request: RANK_MAX_IMAGES. */
  maxImages: number
  /** Largest encoded image: BODY_LIMIT_BYTES, as for one /score upload. */
  maxImageBytes: number
}

const LITTLE_ENDIAN = endianness() === 'LE'
const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/

/** The request's input, read from its JSON `data` or from its binary data. */
export function readModelInput(request: InferRequest, binary: BinaryReader, spec: TensorSpec, limits: InputLimits): ModelInput {
  const { inputs } = request
  if (inputs.length !== 1) {
    throw invalid(`send one input, "${INPUT_IMAGE}" (BYTES) or "${INPUT_TENSOR}" (FP32); got ${inputs.length}: ${inputs.map((i) => JSON.stringify(i.name)).join(', ')}`)
  }
  const input = inputs[0]!
  const size = input.parameters?.binary_data_size
  if (size !== undefined && input.data !== undefined) throw invalid(`input ${JSON.stringify(input.name)} has both "data" and parameters.binary_data_size; send one`)
  if (size === undefined && input.data === undefined) throw invalid(`input ${JSON.stringify(input.name)} has no "data" and no parameters.binary_data_size`)
  const bytes = size === undefined ? undefined : binary.take(size, input.name)
  binary.finish()

  if (input.name === INPUT_IMAGE) {
    expectDatatype(input, 'BYTES')
    const n = batchOf(input, [[], [1]], `[N] or [N, 1]`, limits)
    return { kind: 'image', images: bytes ? bytesElements(bytes, n, limits) : base64Elements(input.data!, input.shape, n, limits) }
  }
  if (input.name === INPUT_TENSOR) {
    expectDatatype(input, 'FP32')
    const { width, height } = spec
    const n = batchOf(input, [[height, width, 3]], `[N, ${height}, ${width}, 3]`, limits)
    const per = tensorSize(spec)
    const values = bytes ? float32Elements(bytes, n * per, input.name) : jsonFloat32(input.data!, input.shape, n * per, input.name)
    checkRange(values, spec, input.name)
    return { kind: 'tensor', rows: Array.from({ length: n }, (_, i) => values.subarray(i * per, (i + 1) * per)) }
  }
  throw invalid(`unknown input ${JSON.stringify(input.name)}; the model's inputs are "${INPUT_IMAGE}" (BYTES) and "${INPUT_TENSOR}" (FP32)`)
}

function expectDatatype(input: InferRequestInput, datatype: string): void {
  if (input.datatype !== datatype) throw invalid(`input ${JSON.stringify(input.name)} must be ${datatype}, got ${JSON.stringify(input.datatype)}`)
}

/** N, the first dimension, when the others are one of `rest`; at least 1, at most the limit. */
function batchOf(input: InferRequestInput, rest: number[][], expected: string, limits: InputLimits): number {
  const [n, ...dims] = input.shape
  if (n === undefined || !rest.some((r) => r.length === dims.length && r.every((d, i) => d === dims[i]))) {
    throw invalid(`input ${JSON.stringify(input.name)} must have shape ${expected}, got [${input.shape.join(', ')}]`)
  }
  if (n === 0) throw new NimaError('NIMA_MISSING_IMAGE', `input ${JSON.stringify(input.name)} has no images (shape [${input.shape.join(', ')}])`)
  if (n > limits.maxImages) throw new NimaError('NIMA_TOO_MANY_IMAGES', `input ${JSON.stringify(input.name)} has ${n} images; at most ${limits.maxImages} (RANK_MAX_IMAGES) per request`)
  return n
}

/** Every leaf of `data`, flat or nested to at most `shape`'s depth, in row-major order; the count must be `expected`. */
function eachElement(data: unknown[], shape: readonly number[], expected: number, name: string, visit: (value: unknown, index: number) => void): void {
  let count = 0
  const walk = (items: unknown[], depth: number): void => {
    for (const item of items) {
      if (Array.isArray(item)) {
        if (depth + 1 >= shape.length) throw invalid(`input ${JSON.stringify(name)}: "data" is nested deeper than its shape [${shape.join(', ')}]`)
        walk(item, depth + 1)
        continue
      }
      if (count >= expected) throw countError(name, shape, expected, `more than ${expected}`)
      visit(item, count++)
    }
  }
  walk(data, 0)
  if (count !== expected) throw countError(name, shape, expected, String(count))
}

function countError(name: string, shape: readonly number[], expected: number, got: string): NimaError {
  return invalid(`input ${JSON.stringify(name)}: shape [${shape.join(', ')}] holds ${expected} elements, "data" has ${got}`)
}

function base64Elements(data: unknown[], shape: readonly number[], n: number, limits: InputLimits): Buffer[] {
  const images: Buffer[] = []
  eachElement(data, shape, n, INPUT_IMAGE, (value, i) => {
    if (typeof value !== 'string') throw invalid(`input "${INPUT_IMAGE}" element ${i}: BYTES elements in JSON are base64 strings, got ${typeof value}`)
    if (!BASE64.test(value) || value.replace(/=+$/, '').length % 4 === 1) throw invalid(`input "${INPUT_IMAGE}" element ${i} is not base64`)
    // Decoded size, known before decoding: 3 bytes per 4 characters.
    if (Math.floor((value.replace(/=+$/, '').length * 3) / 4) > limits.maxImageBytes) throw imageTooLarge(i, limits)
    images.push(Buffer.from(value, 'base64'))
  })
  return images
}

/** BYTES in binary form: per element, a uint32 little-endian length, then the bytes. */
function bytesElements(data: Buffer, n: number, limits: InputLimits): Buffer[] {
  const images: Buffer[] = []
  let offset = 0
  for (let i = 0; i < n; i++) {
    if (data.length - offset < 4) throw invalid(`input "${INPUT_IMAGE}": binary data ends before element ${i}'s 4-byte length (${n} elements declared)`)
    const length = data.readUInt32LE(offset)
    offset += 4
    if (length > data.length - offset) throw invalid(`input "${INPUT_IMAGE}": element ${i} declares ${length} bytes, only ${data.length - offset} are left`)
    if (length > limits.maxImageBytes) throw imageTooLarge(i, limits)
    images.push(data.subarray(offset, offset + length))
    offset += length
  }
  if (offset !== data.length) throw invalid(`input "${INPUT_IMAGE}": ${data.length - offset} bytes of binary data follow its ${n} elements`)
  return images
}

function imageTooLarge(i: number, limits: InputLimits): NimaError {
  return new NimaError('NIMA_PAYLOAD_TOO_LARGE', `input "${INPUT_IMAGE}" element ${i} is over ${limits.maxImageBytes} bytes (BODY_LIMIT_BYTES)`)
}

function jsonFloat32(data: unknown[], shape: readonly number[], count: number, name: string): Float32Array {
  const out = new Float32Array(count)
  eachElement(data, shape, count, name, (value, i) => {
    if (typeof value !== 'number') throw invalid(`input ${JSON.stringify(name)} element ${i}: FP32 elements are numbers, got ${typeof value}`)
    out[i] = value
  })
  return out
}

function float32Elements(data: Buffer, count: number, name: string): Float32Array {
  if (data.length !== count * 4) throw invalid(`input ${JSON.stringify(name)}: its shape holds ${count} FP32 values (${count * 4} bytes), binary_data_size is ${data.length}`)
  const out = new Float32Array(count)
  if (LITTLE_ENDIAN) new Uint8Array(out.buffer).set(data)
  else for (let i = 0; i < count; i++) out[i] = data.readFloatLE(i * 4)
  return out
}

/** The preprocessing rule never writes anything outside its range; NaN fails this too. */
function checkRange(values: Float32Array, spec: TensorSpec, name: string): void {
  const { min, max } = tensorValueRange(spec)
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!
    if (!(v >= min && v <= max)) {
      throw invalid(`input ${JSON.stringify(name)} element ${i} is ${v}; preprocessed values lie in [${min}, ${max}] (x / 127.5 - 1 of 8-bit RGB, NHWC)`)
    }
  }
}

/** An output the client asked for, and whether it wants it as binary data. */
export interface RequestedOutput {
  name: string
  binary: boolean
}

/** The outputs to return, in order: those asked for, else all; binary per output, else per request. */
export function requestedOutputs(request: InferRequest): RequestedOutput[] {
  const all = request.parameters?.binary_data_output === true
  if (!request.outputs || request.outputs.length === 0) return OUTPUT_NAMES.map((name) => ({ name, binary: all }))
  const seen = new Set<string>()
  return request.outputs.map((o) => {
    if (!OUTPUT_NAMES.includes(o.name)) throw invalid(`unknown output ${JSON.stringify(o.name)}; the model's outputs are ${OUTPUT_NAMES.map((n) => `"${n}"`).join(' and ')}`)
    if (seen.has(o.name)) throw invalid(`output ${JSON.stringify(o.name)} is asked for twice`)
    seen.add(o.name)
    return { name: o.name, binary: o.parameters?.binary_data ?? all }
  })
}

/** The output tensors for `scores` (one per image, in input order), and the binary data of those sent as binary. */
export function outputTensors(requested: readonly RequestedOutput[], scores: readonly ScoreSummary[], bins: number): { outputs: InferResponseOutput[]; binary: Buffer[] } {
  const n = scores.length
  const outputs: InferResponseOutput[] = []
  const binary: Buffer[] = []
  for (const { name, binary: asBinary } of requested) {
    let values: Float32Array
    let shape: number[]
    if (name === OUTPUT_DISTRIBUTION) {
      values = new Float32Array(n * bins)
      scores.forEach((s, i) => values.set(s.distribution, i * bins))
      shape = [n, bins]
    } else if (name === OUTPUT_MEAN) {
      values = Float32Array.from(scores, (s) => s.mean)
      shape = [n]
    } else {
      throw new RangeError(`outputTensors: no output ${name}`)
    }
    if (asBinary) {
      const bytes = float32LE(values)
      outputs.push({ name, shape, datatype: 'FP32', parameters: { binary_data_size: bytes.length } })
      binary.push(bytes)
    } else {
      outputs.push({ name, shape, datatype: 'FP32', data: Array.from(values) })
    }
  }
  return { outputs, binary }
}

function float32LE(values: Float32Array): Buffer {
  if (LITTLE_ENDIAN) return Buffer.from(values.buffer, values.byteOffset, values.byteLength)
  const out = Buffer.alloc(values.length * 4)
  values.forEach((v, i) => out.writeFloatLE(v, i * 4))
  return out
}

function invalid(message: string): NimaError {
  return new NimaError('NIMA_INVALID_REQUEST', message)
}
