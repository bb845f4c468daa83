import { float32Values, floatInitializer, onnx, type NodeProto, type TensorProto } from '../models/onnx-proto.js'
import { GRAPH_NAMES } from '../models/onnx-graph.js'
import { softmax } from './math.js'

/**
 * The Dense(1024 → 10) + softmax head of a NIMA ONNX model: reading it, running it in
 * float64, and writing a new one into a copy of the model.
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
  const gemm = nodes.find((n) => n.opType === 'Gemm' && n.input?.[0] === GRAPH_NAMES.features)
  if (!gemm) throw new HeadError(`no Gemm node reads the "${GRAPH_NAMES.features}" output: not a NIMA head`)
  const logits = gemm.output?.[0]
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

/** A float32 initializer's values; any problem is reported as a HeadError. */
export function initializerValues(t: TensorProto): Float32Array {
  try {
    return float32Values(t)
  } catch (err) {
    throw new HeadError(err instanceof Error ? err.message : String(err))
  }
}

export function decodeModel(bytes: Uint8Array): onnx.ModelProto {
  try {
    return onnx.ModelProto.decode(bytes)
  } catch (err) {
    throw new HeadError(`not an ONNX model: ${err instanceof Error ? err.message : String(err)}`)
  }
}

/** The head's weights in float64, kernel in [in][out] layout whatever transB says. */
export function readHead(model: onnx.IModelProto): Head {
  const loc = locateHead(model)
  const k = initializer(model, loc.kernelName)
  const b = initializer(model, loc.biasName)
  const dims = (k.dims ?? []).map(Number)
  if (dims.length !== 2) throw new HeadError(`head kernel ${loc.kernelName} has dims [${dims.join(',')}], expected 2-D`)
  const [inputs, outputs] = loc.transB ? [dims[1]!, dims[0]!] : [dims[0]!, dims[1]!]
  const kv = initializerValues(k)
  const bv = initializerValues(b)
  if (bv.length !== outputs) throw new HeadError(`head bias has ${bv.length} values, expected ${outputs}`)
  const kernel = new Float64Array(inputs * outputs)
  for (let i = 0; i < inputs; i++) for (let j = 0; j < outputs; j++) kernel[i * outputs + j] = loc.transB ? kv[j * inputs + i]! : kv[i * outputs + j]!
  return { inputs, outputs, kernel, bias: Float64Array.from(bv) }
}

export function cloneHead(head: Head): Head {
  return { inputs: head.inputs, outputs: head.outputs, kernel: head.kernel.slice(), bias: head.bias.slice() }
}

/** logits = x·W + b for one feature vector (float64). */
export function headLogits(head: Head, x: ArrayLike<number>, out = new Float64Array(head.outputs)): Float64Array {
  const { inputs, outputs, kernel, bias } = head
  if (x.length !== inputs) throw new RangeError(`features: expected ${inputs} values, got ${x.length}`)
  for (let j = 0; j < outputs; j++) out[j] = bias[j]!
  for (let i = 0; i < inputs; i++) {
    const xi = x[i]!
    if (xi === 0) continue
    const row = i * outputs
    for (let j = 0; j < outputs; j++) out[j]! += xi * kernel[row + j]!
  }
  return out
}

/** softmax(x·W + b): the distribution the ONNX model would output for these features. */
export function headPredict(head: Head, x: ArrayLike<number>): Float64Array {
  return softmax(headLogits(head, x))
}

export interface ReplaceOptions {
  /** Extra ModelProto.metadata_props (existing keys are overwritten). */
  metadata?: Readonly<Record<string, string>>
  docString?: string
}

/**
 * A copy of the encoded model with the head's kernel and bias replaced (stored as float32,
 * in the layout the Gemm expects) and nothing else touched: the backbone initializers,
 * nodes, inputs and outputs are re-encoded byte for byte, so `features` is unchanged.
 */
export function replaceHead(modelBytes: Uint8Array, head: Head, options: ReplaceOptions = {}): Uint8Array {
  const model = decodeModel(modelBytes)
  const loc = locateHead(model)
  const old = readHead(model)
  if (old.inputs !== head.inputs || old.outputs !== head.outputs) {
    throw new HeadError(`new head is ${head.inputs}x${head.outputs}, the model's is ${old.inputs}x${old.outputs}`)
  }
  for (const v of [...head.kernel, ...head.bias]) if (!Number.isFinite(v)) throw new HeadError('new head has non-finite weights')
  const { inputs, outputs } = head
  const kernel = new Float32Array(inputs * outputs)
  for (let i = 0; i < inputs; i++) for (let j = 0; j < outputs; j++) kernel[loc.transB ? j * inputs + i : i * outputs + j] = head.kernel[i * outputs + j]!
  const shape = loc.transB ? [outputs, inputs] : [inputs, outputs]
  const replacements = new Map<string, TensorProto>([
    [loc.kernelName, floatInitializer(loc.kernelName, { shape, data: kernel })],
    [loc.biasName, floatInitializer(loc.biasName, { shape: [outputs], data: Float32Array.from(head.bias) })],
  ])
  const graph = model.graph!
  graph.initializer = (graph.initializer ?? []).map((t) => (t.name && replacements.has(t.name) ? onnx.TensorProto.create(replacements.get(t.name)!) : t))
  if (options.metadata) {
    const props = new Map(model.metadataProps.map((p) => [p.key ?? '', p.value ?? '']))
    for (const [k, v] of Object.entries(options.metadata)) props.set(k, v)
    model.metadataProps = [...props].map(([key, value]) => onnx.StringStringEntryProto.create({ key, value }))
  }
  if (options.docString !== undefined) model.docString = options.docString
  return onnx.ModelProto.encode(model).finish()
}
