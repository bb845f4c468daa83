import t from 'tap'
import { onnx, type NodeProto, type ValueInfoProto } from '../../src/models/onnx-proto.js'
import { buildOnnxModel, type PaddingMode } from '../../src/models/onnx-graph.js'
import { syntheticWeights } from '../../src/model-tools/synthetic-weights.js'

const weights = syntheticWeights(9)

function decode(padding: PaddingMode) {
  return onnx.ModelProto.decode(buildOnnxModel(weights, { padding }))
}

/** An INT or INTS attribute as a list (decoded INT attributes also carry an empty ints). */
function ints(node: NodeProto, name: string): number[] {
  const attribute = node.attribute?.find((a) => a.name === name)
  if (attribute === undefined) return []
  return (attribute.type === onnx.AttributeProto.AttributeType.INTS ? (attribute.ints ?? []) : [attribute.i ?? 0]).map(Number)
}

function dims(info: ValueInfoProto): (number | string)[] {
  return (info.type?.tensorType?.shape?.dim ?? []).map((d) => (d.dimParam ? d.dimParam : Number(d.dimValue)))
}

t.test('model header, inputs and outputs', async (t) => {
  const model = decode('keras')
  t.equal(Number(model.irVersion), 8)
  t.same(model.opsetImport.map((o) => [o.domain, Number(o.version)]), [['', 13]])
  t.same(model.graph!.input!.map((i) => [i.name, dims(i)]), [['input', ['batch', 224, 224, 3]]])
  t.same(model.graph!.output!.map((o) => [o.name, dims(o)]), [
    ['features', ['batch', 1024]],
    ['scores', ['batch', 10]],
    ['feature_map', ['batch', 1024, 7, 7]],
  ])
  const ops = model.graph!.node!.map((n) => n.opType)
  t.equal(ops[0], 'Transpose')
  t.same(ints(model.graph!.node![0]!, 'perm'), [0, 3, 1, 2], 'NHWC → NCHW')
  t.equal(ops.filter((o) => o === 'Conv').length, 27)
  t.equal(ops.filter((o) => o === 'Clip').length, 27, 'every conv is followed by ReLU6 (BatchNorm folded, no BN nodes)')
  t.same(ops.slice(-4), ['GlobalAveragePool', 'Flatten', 'Gemm', 'Softmax'])
  const pool = model.graph!.node!.find((n) => n.opType === 'GlobalAveragePool')!
  const lastClip = model.graph!.node!.filter((n) => n.opType === 'Clip').at(-1)!
  t.same([lastClip.output, pool.input], [['feature_map'], ['feature_map']], 'the feature map is the final ReLU6, what the pooling reads')
})

t.test('keras padding: stride-2 convs pad only bottom and right', async (t) => {
  const convs = decode('keras').graph!.node!.filter((n) => n.opType === 'Conv')
  const strided = convs.filter((n) => ints(n, 'strides')[0] === 2)
  t.same(strided.map((n) => n.output![0]), ['conv1/conv', 'conv_dw_2/conv', 'conv_dw_4/conv', 'conv_dw_6/conv', 'conv_dw_12/conv'])
  for (const n of strided) t.same(ints(n, 'pads'), [0, 0, 1, 1], `${n.name} pads [top,left,bottom,right] = [0,0,1,1]`)
  const dw3 = convs.find((n) => n.name === 'conv_dw_3/conv')!
  t.same(ints(dw3, 'pads'), [1, 1, 1, 1], 'stride-1 3x3 is same')
  t.same(ints(dw3, 'group'), [128], 'depthwise: one group per channel')
  const pw3 = convs.find((n) => n.name === 'conv_pw_3/conv')!
  t.same(ints(pw3, 'pads'), [0, 0, 0, 0])
  t.same(ints(pw3, 'group'), [1])
})

t.test('symmetric padding pads stride-2 convs on every side', async (t) => {
  const convs = decode('symmetric').graph!.node!.filter((n) => n.opType === 'Conv' && ints(n, 'strides')[0] === 2)
  for (const n of convs) t.same(ints(n, 'pads'), [1, 1, 1, 1], `${n.name}`)
})

t.test('BatchNorm is folded into OIHW weights and a bias', async (t) => {
  const model = decode('keras')
  const init = (name: string): Float32Array => {
    const tensor = model.graph!.initializer!.find((i) => i.name === name)!
    const raw = tensor.rawData!
    return new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.byteLength))
  }
  const bn = (layer: string, p: string): Float32Array => weights.get(`${layer}/${p}`)!.data
  const scale = (layer: string, c: number): number => bn(layer, 'gamma')[c]! / Math.sqrt(bn(layer, 'moving_variance')[c]! + 1e-3)

  // Pointwise conv_pw_2: Keras [1,1,64,128] → ONNX [128,64,1,1]; check (o=5, i=7).
  const pw = init('conv_pw_2/weight')
  const kernel = weights.get('conv_pw_2/kernel')!.data
  t.ok(Math.abs(pw[5 * 64 + 7]! - kernel[7 * 128 + 5]! * scale('conv_pw_2_bn', 5)) < 1e-6, 'w′ = w · γ/√(σ²+ε)')
  const bias = init('conv_pw_2/bias')
  const expectedBias = bn('conv_pw_2_bn', 'beta')[5]! - bn('conv_pw_2_bn', 'moving_mean')[5]! * scale('conv_pw_2_bn', 5)
  t.ok(Math.abs(bias[5]! - expectedBias) < 1e-6, 'b′ = β − μ · γ/√(σ²+ε)')

  // Depthwise conv_dw_2: Keras [3,3,64,1] → ONNX [64,1,3,3]; check (c=9, y=2, x=1).
  const dw = init('conv_dw_2/weight')
  const dwKernel = weights.get('conv_dw_2/depthwise_kernel')!.data
  t.ok(Math.abs(dw[9 * 9 + 2 * 3 + 1]! - dwKernel[(2 * 3 + 1) * 64 + 9]! * scale('conv_dw_2_bn', 9)) < 1e-6, 'depthwise HWC1 → C1HW')

  // conv1: Keras [3,3,3,32] → ONNX [32,3,3,3]; check (o=4, i=2, y=0, x=2).
  const c1 = init('conv1/weight')
  const c1Kernel = weights.get('conv1/kernel')!.data
  t.ok(Math.abs(c1[((4 * 3 + 2) * 3 + 0) * 3 + 2]! - c1Kernel[((0 * 3 + 2) * 3 + 2) * 32 + 4]! * scale('conv1_bn', 4)) < 1e-6, 'HWIO → OIHW')
})

t.test('options are validated', async (t) => {
  t.throws(() => buildOnnxModel(weights, { padding: 'same' as PaddingMode }), { message: `padding: expected 'keras' or 'symmetric', got "same"` })
  const incomplete = new Map(weights)
  incomplete.delete('dense/bias')
  t.throws(() => buildOnnxModel(incomplete), { code: 'MODEL_WEIGHTS_INVALID', message: /missing dense\/bias: expected shape \[10\]/ })
})
