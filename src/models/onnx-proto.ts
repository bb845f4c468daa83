import { endianness } from 'node:os'
import onnxProto from 'onnx-proto'
import type { Tensor } from './weights.js'

/**
 * Small constructors over onnx-proto's generated classes, so the graph builder reads as a
 * list of layers rather than protobuf plumbing. onnx-proto is CommonJS; its namespace
 * only arrives through the default import. The alias below re-exports it as a value and
 * as a type namespace (onnx.ModelProto.decode(...), onnx.IModelProto) in one name.
 */
export import onnx = onnxProto.onnx
export type NodeProto = onnx.INodeProto
export type TensorProto = onnx.ITensorProto
export type ValueInfoProto = onnx.IValueInfoProto

export type AttributeValue = number | readonly number[]

/** Integer attributes only: this network needs no float or string attributes. */
export function node(
  opType: string,
  inputs: readonly string[],
  outputs: readonly string[],
  attributes: Record<string, AttributeValue> = {},
): NodeProto {
  const attribute = Object.entries(attributes).map(([name, value]) =>
    typeof value === 'number'
      ? { name, type: onnx.AttributeProto.AttributeType.INT, i: value }
      : { name, type: onnx.AttributeProto.AttributeType.INTS, ints: [...value] },
  )
  return { opType, name: outputs[0], input: [...inputs], output: [...outputs], attribute }
}

const littleEndian = endianness() === 'LE'

/**
 * A float32 initializer. ONNX raw_data is little-endian: on such hosts the typed array's
 * bytes go in as they are (small file, fast encoding); elsewhere the values go through
 * float_data instead.
 */
export function floatInitializer(name: string, tensor: Tensor): TensorProto {
  const { data } = tensor
  const base = { name, dims: [...tensor.shape], dataType: onnx.TensorProto.DataType.FLOAT }
  return littleEndian
    ? { ...base, rawData: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) }
    : { ...base, floatData: Array.from(data) }
}

export function scalarFloatInitializer(name: string, value: number): TensorProto {
  return { name, dims: [], dataType: onnx.TensorProto.DataType.FLOAT, floatData: [value] }
}

/** A float tensor graph input or output; string dims are symbolic (e.g. 'batch'). */
export function floatValueInfo(name: string, dims: readonly (number | string)[]): ValueInfoProto {
  return {
    name,
    type: {
      tensorType: {
        elemType: onnx.TensorProto.DataType.FLOAT,
        shape: { dim: dims.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
      },
    },
  }
}

/** A float32 initializer's values, from raw_data (little-endian) or float_data. */
export function float32Values(t: TensorProto): Float32Array {
  if (t.dataType !== onnx.TensorProto.DataType.FLOAT) throw new RangeError(`initializer ${t.name} is not float32 (data type ${t.dataType})`)
  const count = (t.dims ?? []).reduce<number>((a, d) => a * Number(d), 1)
  let values: Float32Array
  if (t.rawData && t.rawData.length > 0) {
    const view = new DataView(t.rawData.buffer, t.rawData.byteOffset, t.rawData.byteLength)
    values = new Float32Array(t.rawData.byteLength / 4)
    for (let i = 0; i < values.length; i++) values[i] = view.getFloat32(i * 4, true)
  } else {
    values = Float32Array.from(t.floatData ?? [])
  }
  if (values.length !== count) throw new RangeError(`initializer ${t.name}: ${values.length} values for dims [${(t.dims ?? []).join(',')}]`)
  return values
}
