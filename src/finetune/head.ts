import { floatInitializer, onnx, type TensorProto } from '../models/onnx-proto.js'
import { decodeModel, locateHead, readHead, HeadError, type Head } from '../models/head.js'
import { softmax } from './math.js'

// Reading the head lives with the models (the service reads it for /explain too); training
// and writing a new head live here. Re-exported so fine-tuning has one module to import.
export { decodeModel, initializerValues, locateHead, readHead, HeadError, type Head, type HeadLocation } from '../models/head.js'

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
