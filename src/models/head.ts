import { float32Values, onnx, type NodeProto, type TensorProto } from './onnx-proto.js'
import { GRAPH_NAMES } from './onnx-graph.js'
import { getFloat16 } from '@petamoriken/float16'

/**
 * The Dense(1024 → 10) + softmax head of a NIMA ONNX model, read from the model file
 * (fine-tuning trains and writes heads; /explain weighs the feature map with it).
 *
 * The head is found by structure, not by name: the Gemm node that consumes the graph's
 * `features` output and feeds the Softmax producing `scores`. Its B input is the kernel
 * (Keras layout [in, out], or [out, in] when transB = 1) and its C input the bias.
 */
export interface Head {
  inputs: number
  outputs: number
  /** Row-major [inputs][outputs], the Keras Dense kernel layout. */
  kernel: Float64Array
  bias: Float64Array
}

export interface HeadLocation {
  gemm: NodeProto
  kernelName: string
  biasName: string
  /** true when the stored kernel is [out, in]. */
  transB: boolean
}

export class HeadError extends Error {
  override name = 'HeadError'
}

function intAttribute(node: NodeProto, name: string, fallback: number): number {
  const a = node.attribute?.find((x) => x.name === name)
  return a ? Number(a.i ?? fallback) : fallback
}

function floatAttribute(node: NodeProto, name: string, fallback: number): number {
  const a = node.attribute?.find((x) => x.name === name)
  return a ? Number(a.f ?? fallback) : fallback
}

export function locateHead(model: onnx.IModelProto): HeadLocation {
  const nodes = model.graph?.node ?? []
  // A float16 variant computes `features` as `features/float16` and casts it back for the
  // graph output (src/model-tools/float16.ts); its head reads the float16 tensor.
  const featureNames = new Set<string>([GRAPH_NAMES.features, `${GRAPH_NAMES.features}/float16`])
  const gemm = nodes.find((n) => n.opType === 'Gemm' && featureNames.has(n.input?.[0] ?? ''))
  if (!gemm) throw new HeadError(`no Gemm node reads the "${GRAPH_NAMES.features}" output: not a NIMA head`)
  // The Gemm's logits may reach the Softmax through a Cast (float16 variants keep the softmax in float32).
  let logits = gemm.output?.[0]
  const cast = nodes.find((n) => n.opType === 'Cast' && n.input?.[0] === logits)
  if (cast) logits = cast.output?.[0]
  const soft = nodes.find((n) => n.opType === 'Softmax' && n.input?.[0] === logits)
  if (!soft || soft.output?.[0] !== GRAPH_NAMES.scores) throw new HeadError(`the head's Gemm does not feed a Softmax producing "${GRAPH_NAMES.scores}"`)
  if (intAttribute(gemm, 'transA', 0) !== 0) throw new HeadError('the head Gemm has transA = 1, which NIMA never uses')
  if (floatAttribute(gemm, 'alpha', 1) !== 1 || floatAttribute(gemm, 'beta', 1) !== 1) throw new HeadError('the head Gemm has alpha or beta != 1')
  const [, kernelName, biasName] = gemm.input ?? []
  if (!kernelName || !biasName) throw new HeadError('the head Gemm has no bias input')
  return { gemm, kernelName, biasName, transB: intAttribute(gemm, 'transB', 0) === 1 }
}

function initializer(model: onnx.IModelProto, name: string): TensorProto {
  const t = model.graph?.initializer?.find((i) => i.name === name)
  if (!t) throw new HeadError(`initializer ${name} not found`)
  return t
}

/**
 * A float32 initializer's values; any problem is reported as a HeadError. With `float16`,
 * a float16 initializer (a float16 variant's head) is read too, widened exactly.
 */
export function initializerValues(t: TensorProto, options: { float16?: boolean } = {}): Float32Array {
  try {
    if (options.float16 && t.dataType === onnx.TensorProto.DataType.FLOAT16) return float16Values(t)
    return float32Values(t)
  } catch (err) {
    throw new HeadError(err instanceof Error ? err.message : String(err))
  }
}

function float16Values(t: TensorProto): Float32Array {
  const raw = t.rawData ?? new Uint8Array()
  const count = (t.dims ?? []).reduce<number>((a, d) => a * Number(d), 1)
  if (raw.byteLength !== count * 2) throw new RangeError(`initializer ${t.name}: ${raw.byteLength} bytes of float16 for dims [${(t.dims ?? []).join(',')}]`)
  const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength)
  const values = new Float32Array(count)
  for (let i = 0; i < count; i++) values[i] = getFloat16(view, i * 2, true)
  return values
}

export function decodeModel(bytes: Uint8Array): onnx.ModelProto {
  try {
    return onnx.ModelProto.decode(bytes)
  } catch (err) {
    throw new HeadError(`not an ONNX model: ${err instanceof Error ? err.message : String(err)}`)
  }
}

/**
 * The head's weights in float64, kernel in [in][out] layout whatever transB says.
 * `float16`: accept a float16 variant's head (fine-tuning does not: it writes float32).
 */
export function readHead(model: onnx.IModelProto, options: { float16?: boolean } = {}): Head {
  const loc = locateHead(model)
  const k = initializer(model, loc.kernelName)
  const b = initializer(model, loc.biasName)
  const dims = (k.dims ?? []).map(Number)
  if (dims.length !== 2) throw new HeadError(`head kernel ${loc.kernelName} has dims [${dims.join(',')}], expected 2-D`)
  const [inputs, outputs] = loc.transB ? [dims[1]!, dims[0]!] : [dims[0]!, dims[1]!]
  const kv = initializerValues(k, options)
  const bv = initializerValues(b, options)
  if (bv.length !== outputs) throw new HeadError(`head bias has ${bv.length} values, expected ${outputs}`)
  const kernel = new Float64Array(inputs * outputs)
  for (let i = 0; i < inputs; i++) for (let j = 0; j < outputs; j++) kernel[i * outputs + j] = loc.transB ? kv[j * inputs + i]! : kv[i * outputs + j]!
  return { inputs, outputs, kernel, bias: Float64Array.from(bv) }
}

