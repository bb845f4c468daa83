import { getFloat16, setFloat16 } from '@petamoriken/float16'
import { float32Values, onnx, type NodeProto, type TensorProto } from '../models/onnx-proto.js'

/**
 * float32 → float16 conversion of a NIMA ONNX graph, for GPUs (CUDA, WebGPU) where half
 * precision halves the weights' memory traffic and runs on tensor cores.
 *
 * The graph's inputs and outputs stay float32, so the service feeds and reads the variant
 * exactly like the original; Cast nodes at the edges do the conversion inside the model.
 * Softmax stays in float32: its outputs are the probabilities the score is the mean of,
 * and float16's 11-bit mantissa on values near 0.1 would alone move a mean by ~0.005.
 */

const { FLOAT, FLOAT16 } = onnx.TensorProto.DataType

/** Ops this converter knows to be type-polymorphic over float16 with float inputs only. */
const FLOAT16_OPS = new Set(['Transpose', 'Conv', 'Clip', 'Relu', 'Add', 'Mul', 'GlobalAveragePool', 'AveragePool', 'MaxPool', 'Flatten', 'Gemm', 'MatMul', 'BatchNormalization'])
export const DEFAULT_KEEP_FLOAT32: readonly string[] = ['Softmax']

/** The largest finite float16. */
const FLOAT16_MAX = 65504

export interface Float16Options {
  /** Op types computed in float32 (their float16 inputs are cast up first). */
  keepFloat32?: readonly string[]
}

export interface Float16Stats {
  /** Initializers converted to float16. */
  initializers: number
  values: number
  /** Largest |x − float16(x)| over all weights. */
  maxAbsRoundingError: number
  /** Non-zero weights that became 0 (below float16's smallest subnormal, ~6e-8). */
  flushedToZero: number
  /** Cast nodes inserted. */
  casts: number
}

export class Float16ConversionError extends Error {
  override name = 'Float16ConversionError'
}

/** float32 values → float16 little-endian bytes (round to nearest even, as IEEE 754 says). */
export function float16Bytes(values: Float32Array, stats?: Pick<Float16Stats, 'maxAbsRoundingError' | 'flushedToZero'>): Uint8Array {
  const bytes = new Uint8Array(values.length * 2)
  const view = new DataView(bytes.buffer)
  for (let i = 0; i < values.length; i++) {
    const x = values[i]!
    if (!(Math.abs(x) <= FLOAT16_MAX)) throw new Float16ConversionError(`value ${x} at index ${i} does not fit in float16 (max ${FLOAT16_MAX})`)
    setFloat16(view, i * 2, x, true)
    if (stats) {
      const back = getFloat16(view, i * 2, true)
      const error = Math.abs(x - back)
      if (error > stats.maxAbsRoundingError) stats.maxAbsRoundingError = error
      if (back === 0 && x !== 0) stats.flushedToZero++
    }
  }
  return bytes
}

/** float16 little-endian bytes → float32 values (exact: every float16 is a float32). */
export function float16Values(bytes: Uint8Array): Float32Array {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const values = new Float32Array(bytes.byteLength / 2)
  for (let i = 0; i < values.length; i++) values[i] = getFloat16(view, i * 2, true)
  return values
}

type Precision = 'f16' | 'f32'

/**
 * Returns a new model whose float32 weights and activations are float16, with the graph
 * inputs/outputs still float32. Throws Float16ConversionError on anything it does not
 * know how to convert faithfully (an unknown op, a non-float input, a weight out of
 * float16's range) rather than produce a model that runs but scores differently.
 */
export function convertToFloat16(model: onnx.IModelProto, options: Float16Options = {}): { model: onnx.ModelProto; stats: Float16Stats } {
  const graph = model.graph
  if (!graph) throw new Float16ConversionError('the model has no graph')
  const keep = new Set(options.keepFloat32 ?? DEFAULT_KEEP_FLOAT32)
  if ((model.metadataProps ?? []).some((p) => p.key === 'precision' && p.value === 'float16')) {
    throw new Float16ConversionError('the model is already float16')
  }

  const stats: Float16Stats = { initializers: 0, values: 0, maxAbsRoundingError: 0, flushedToZero: 0, casts: 0 }
  // Where each float tensor lives, and under which name in the new graph.
  const precision = new Map<string, Precision>()
  const rename = new Map<string, string>()

  const usedBy = new Map<string, Set<boolean>>()
  for (const n of graph.node ?? []) {
    for (const input of n.input ?? []) {
      const set = usedBy.get(input) ?? new Set<boolean>()
      set.add(keep.has(n.opType ?? ''))
      usedBy.set(input, set)
    }
  }

  const initializers: TensorProto[] = []
  for (const t of graph.initializer ?? []) {
    if (t.dataType !== FLOAT) {
      initializers.push(t)
      continue
    }
    const uses = usedBy.get(t.name ?? '') ?? new Set<boolean>()
    if (uses.size > 1) throw new Float16ConversionError(`initializer ${t.name} feeds both float16 and float32 ops`)
    if (uses.has(true)) {
      initializers.push(t)
      precision.set(t.name ?? '', 'f32')
      continue
    }
    let values: Float32Array
    try {
      values = float32Values(t)
    } catch (err) {
      throw new Float16ConversionError(err instanceof Error ? err.message : String(err))
    }
    let rawData: Uint8Array
    try {
      rawData = float16Bytes(values, stats)
    } catch (err) {
      throw new Float16ConversionError(`initializer ${t.name}: ${err instanceof Error ? err.message : String(err)}`)
    }
    initializers.push({ name: t.name, dims: t.dims, dataType: FLOAT16, rawData })
    precision.set(t.name ?? '', 'f16')
    stats.initializers++
    stats.values += values.length
  }

  const nodes: NodeProto[] = []
  const casts = new Map<string, string>()
  const cast = (source: string, to: Precision): string => {
    const key = `${source}->${to}`
    const existing = casts.get(key)
    if (existing) return existing
    const target = `${source}/as_${to === 'f16' ? 'float16' : 'float32'}`
    nodes.push({ opType: 'Cast', name: target, input: [source], output: [target], attribute: [{ name: 'to', type: onnx.AttributeProto.AttributeType.INT, i: to === 'f16' ? FLOAT16 : FLOAT }] })
    casts.set(key, target)
    stats.casts++
    return target
  }

  for (const input of graph.input ?? []) {
    if (input.type?.tensorType?.elemType !== FLOAT) throw new Float16ConversionError(`graph input ${input.name} is not float32`)
    precision.set(input.name ?? '', 'f32')
  }
  const outputs = new Set((graph.output ?? []).map((o) => o.name ?? ''))

  for (const n of graph.node ?? []) {
    const op = n.opType ?? ''
    const inFloat32 = keep.has(op)
    if (!inFloat32 && !FLOAT16_OPS.has(op)) {
      throw new Float16ConversionError(`op ${op} (node ${n.name}) is not known to run in float16; add it to keepFloat32 or extend the converter`)
    }
    const want: Precision = inFloat32 ? 'f32' : 'f16'
    const inputs = (n.input ?? []).map((name) => {
      if (name === '') return name
      const current = rename.get(name) ?? name
      const p = precision.get(name)
      if (p === undefined) throw new Float16ConversionError(`input ${name} of node ${n.name} is not a known float tensor`)
      return p === want ? current : cast(current, want)
    })
    const nodeOutputs = (n.output ?? []).map((name) => {
      precision.set(name, want)
      // A float16 graph output is written under another name and cast back to float32 at the end.
      if (want === 'f16' && outputs.has(name)) {
        const internal = `${name}/float16`
        rename.set(name, internal)
        return internal
      }
      return name
    })
    nodes.push({ ...n, input: inputs, output: nodeOutputs })
  }

  for (const name of outputs) {
    const internal = rename.get(name)
    if (internal === undefined) continue
    nodes.push({ opType: 'Cast', name: `${name}/as_float32`, input: [internal], output: [name], attribute: [{ name: 'to', type: onnx.AttributeProto.AttributeType.INT, i: FLOAT }] })
    stats.casts++
  }

  const metadata = (model.metadataProps ?? []).filter((p) => p.key !== 'precision')
  const converted = onnx.ModelProto.create({
    ...model,
    metadataProps: [...metadata, { key: 'precision', value: 'float16' }],
    graph: { ...graph, node: nodes, initializer: initializers, valueInfo: [] },
  })
  return { model: converted, stats }
}
