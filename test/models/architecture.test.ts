import t from 'tap'
import { CONV_LAYERS, EXPECTED_TENSORS, STRIDE2_BLOCKS, kerasPadding, parameterCount } from '../../src/models/architecture.js'

t.test('the expected-tensor table is Keras MobileNet v1 (alpha 1.0) plus the Dense(10) head', async (t) => {
  t.equal(EXPECTED_TENSORS.size, 137, '137 tensors')
  t.equal(parameterCount(), 3_239_114, '3,239,114 parameters, BatchNorm statistics included')
  t.same(EXPECTED_TENSORS.get('conv1/kernel'), [3, 3, 3, 32])
  t.same(EXPECTED_TENSORS.get('conv1_bn/moving_variance'), [32])
  t.same(EXPECTED_TENSORS.get('conv_dw_1/depthwise_kernel'), [3, 3, 32, 1])
  t.same(EXPECTED_TENSORS.get('conv_pw_1/kernel'), [1, 1, 32, 64])
  t.same(EXPECTED_TENSORS.get('conv_dw_13/depthwise_kernel'), [3, 3, 1024, 1])
  t.same(EXPECTED_TENSORS.get('conv_pw_13_bn/gamma'), [1024])
  t.same(EXPECTED_TENSORS.get('dense/kernel'), [1024, 10])
  t.same(EXPECTED_TENSORS.get('dense/bias'), [10])
})

t.test('27 convs, channels chain, stride 2 in conv1 and blocks 2, 4, 6, 12', async (t) => {
  t.equal(CONV_LAYERS.length, 27)
  for (let i = 1; i < CONV_LAYERS.length; i++) {
    t.equal(CONV_LAYERS[i]!.inChannels, CONV_LAYERS[i - 1]!.outChannels, `${CONV_LAYERS[i]!.name} takes what the previous layer gives`)
  }
  const strided = CONV_LAYERS.filter((l) => l.stride === 2).map((l) => l.name)
  t.same(strided, ['conv1', 'conv_dw_2', 'conv_dw_4', 'conv_dw_6', 'conv_dw_12'])
  t.same([...STRIDE2_BLOCKS], [2, 4, 6, 12])
  // 224 → 112 → 56 → 28 → 14 → 7: five halvings leave the 7x7 map Keras pools.
  let size = 224
  for (const layer of CONV_LAYERS) {
    const p = layer.padding
    size = Math.floor((size + p.top + p.bottom - layer.kernelSize) / layer.stride) + 1
  }
  t.equal(size, 7)
})

t.test('Keras padding: stride 2 pads only bottom and right, stride 1 is same', async (t) => {
  t.same(kerasPadding(3, 2), { top: 0, left: 0, bottom: 1, right: 1 })
  t.same(kerasPadding(3, 1), { top: 1, left: 1, bottom: 1, right: 1 })
  t.same(kerasPadding(1, 1), { top: 0, left: 0, bottom: 0, right: 0 })
})
