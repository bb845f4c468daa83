import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import h5wasm from 'h5wasm/node'
import t from 'tap'
import { canonicalTensorName, readKerasFile, readKerasWeights } from '../../src/model-tools/keras-hdf5.js'
import { detectPadding } from '../../src/model-tools/keras-padding.js'
import { writeKerasWeights } from '../../src/model-tools/keras-hdf5-writer.js'
import { syntheticWeights } from '../../src/model-tools/synthetic-weights.js'
import type { WeightSet } from '../../src/models/weights.js'

const weights = syntheticWeights(5)

/** Names of tensors that did not round-trip bit for bit (or are missing or extra). */
function differences(actual: WeightSet, expected: WeightSet): string[] {
  const bytes = (d: Float32Array): Buffer => Buffer.from(d.buffer, d.byteOffset, d.byteLength)
  const out = [...expected]
    .filter(([name, tensor]) => {
      const got = actual.get(name)
      return got === undefined || got.shape.join() !== tensor.shape.join() || !bytes(got.data).equals(bytes(tensor.data))
    })
    .map(([name]) => name)
  return [...out, ...[...actual.keys()].filter((name) => !expected.has(name))]
}

t.test('canonical names: :0 suffixes, nested models and both head names', async (t) => {
  t.equal(canonicalTensorName('conv1/kernel:0', 'conv1'), 'conv1/kernel')
  t.equal(canonicalTensorName('model_1/conv_pw_3/kernel:0', 'model_1'), 'conv_pw_3/kernel')
  t.equal(canonicalTensorName('dense_1/bias:0', 'dense_1'), 'dense/bias')
  t.equal(canonicalTensorName('dense/kernel', 'dense'), 'dense/kernel')
  t.equal(canonicalTensorName('kernel:0', 'conv_dw_2'), 'conv_dw_2/kernel')
})

t.test('round trip through the idealo layout (head dense_1)', async (t) => {
  const path = join(t.testdir(), 'w.hdf5')
  await writeKerasWeights(path, weights)
  t.same(differences(await readKerasWeights(path), weights), [], 'every tensor round-trips bit for bit')

  // The file looks like Keras wrote it: layer list, per-layer weight_names, paths.
  await h5wasm.ready
  const file = new h5wasm.File(path, 'r')
  t.teardown(() => void file.close())
  const layers = file.get_attribute('layer_names', false) as string[]
  t.equal(layers[0], 'input_1')
  t.equal(layers.at(-1), 'dense_1')
  t.ok(layers.includes('conv_pad_12'), 'weight-less layers are listed too')
  t.same((file.get('conv_dw_3') as InstanceType<typeof h5wasm.Group>).get_attribute('weight_names', false), ['conv_dw_3/depthwise_kernel:0'])
  t.ok(file.get('conv1_bn/conv1_bn/moving_variance:0') instanceof h5wasm.Dataset)
  t.ok(file.get('dense_1/dense_1/kernel:0') instanceof h5wasm.Dataset)
})

t.test('round trip with head named dense, and with the base nested in model_1', async (t) => {
  const dir = t.testdir()
  await writeKerasWeights(join(dir, 'dense.hdf5'), weights, { headLayer: 'dense' })
  t.same(differences(await readKerasWeights(join(dir, 'dense.hdf5')), weights), [], 'every tensor round-trips bit for bit')
  await writeKerasWeights(join(dir, 'nested.hdf5'), weights, { nestedBase: 'model_1' })
  t.same(differences(await readKerasWeights(join(dir, 'nested.hdf5')), weights), [], 'every tensor round-trips bit for bit')
})

t.test('float64 datasets and chunked layer_names are read too', async (t) => {
  const path = join(t.testdir(), 'f64.hdf5')
  await h5wasm.ready
  const file = new h5wasm.File(path, 'w')
  const layers = [...new Set([...weights.keys()].map((n) => n.split('/')[0]!))]
  // h5py splits attributes over 64 KiB into layer_names0, layer_names1, ...
  file.create_attribute('layer_names0', layers.slice(0, 20), [20], 'S24')
  file.create_attribute('layer_names1', layers.slice(20), [layers.length - 20], 'S24')
  for (const layer of layers) {
    const group = file.create_group(layer)
    const own = [...weights].filter(([n]) => n.startsWith(`${layer}/`))
    group.create_attribute('weight_names', own.map(([n]) => `${n}:0`), [own.length], 'S48')
    const inner = group.create_group(layer)
    for (const [name, tensor] of own) {
      inner.create_dataset({ name: `${name.split('/')[1]}:0`, data: Float64Array.from(tensor.data), shape: [...tensor.shape], dtype: '<d' })
    }
  }
  file.close()
  t.same(differences(await readKerasWeights(path), weights), [], 'every tensor round-trips bit for bit')
})

t.test('a file with tensors missing or mis-shaped fails with every problem listed', async (t) => {
  const broken = new Map(weights)
  broken.delete('conv_pw_4_bn/gamma')
  broken.set('conv_dw_9/depthwise_kernel', { shape: [3, 3, 512], data: new Float32Array(3 * 3 * 512) })
  const path = join(t.testdir(), 'broken.hdf5')
  // The writer validates its input, so write the broken set with the real layout by hand.
  await h5wasm.ready
  const file = new h5wasm.File(path, 'w')
  const layers = [...new Set([...broken.keys()].map((n) => n.split('/')[0]!))]
  file.create_attribute('layer_names', layers, [layers.length], 'S24')
  for (const layer of layers) {
    const own = [...broken].filter(([n]) => n.startsWith(`${layer}/`))
    const group = file.create_group(layer)
    group.create_attribute('weight_names', own.map(([n]) => `${n}:0`), [own.length], 'S48')
    const inner = group.create_group(layer)
    for (const [name, tensor] of own) inner.create_dataset({ name: `${name.split('/')[1]}:0`, data: tensor.data, shape: [...tensor.shape], dtype: '<f4' })
  }
  file.close()
  await t.rejects(readKerasWeights(path), {
    code: 'MODEL_WEIGHTS_INVALID',
    message: new RegExp(
      'missing conv_pw_4_bn/gamma: expected shape \\[256\\][\\s\\S]*' +
        'mis-shaped conv_dw_9/depthwise_kernel: expected shape \\[3,3,512,1\\], got \\[3,3,512\\]',
    ),
  })
})

t.test('files that are not Keras weights fail clearly', async (t) => {
  const dir = t.testdir({ 'photo.hdf5': 'not an hdf5 file at all' })
  await t.rejects(readKerasWeights(join(dir, 'photo.hdf5')), {
    code: 'MODEL_FILE_UNREADABLE',
    message: /photo\.hdf5 is not an HDF5 file: expected the HDF5 signature/,
  })
  await t.rejects(readKerasWeights(join(dir, 'absent.hdf5')), { code: 'MODEL_FILE_UNREADABLE', message: /cannot read .*absent\.hdf5: ENOENT/ })

  await h5wasm.ready
  const plain = new h5wasm.File(join(dir, 'plain.hdf5'), 'w')
  plain.create_attribute('title', 'something else')
  plain.close()
  await t.rejects(readKerasWeights(join(dir, 'plain.hdf5')), {
    code: 'MODEL_FILE_UNREADABLE',
    message: /plain\.hdf5 is not a Keras save_weights file: expected a root attribute layer_names, found attributes: title/,
  })
  await writeFile(join(dir, 'empty.hdf5'), '')
  await t.rejects(readKerasWeights(join(dir, 'empty.hdf5')), { code: 'MODEL_FILE_UNREADABLE' })
})

t.test('the padding convention is read from the layer list', async (t) => {
  const dir = t.testdir()
  const cases = [
    [{}, 'keras', /layers conv_pad_2\/4\/6\/12 only \(keras_version 2\.2\.4\)/],
    [{ mobilenet: 'keras-2.1.6' }, 'symmetric', /layer conv_pad_1 present \(keras_version 2\.1\.6\): Keras 2\.1\.5-2\.2\.0 MobileNet/],
    [{ nestedBase: 'model_1' }, 'keras', /base layers not listed \(nested model\?\)/],
    // A full model.save keeps model_config, whose nested layer list shows the pad layers.
    [{ nestedBase: 'model_1', layout: 'model', mobilenet: 'keras-2.1.6' }, 'symmetric', /layer conv_pad_1 present/],
    [{ layout: 'model', headLayer: 'predictions' }, 'keras', /layers conv_pad_2\/4\/6\/12 only/],
  ] as const
  for (const [options, padding, reason] of cases) {
    const path = join(dir, `${padding}-${Object.keys(options).join() || 'default'}.hdf5`)
    await writeKerasWeights(path, weights, options)
    const file = await readKerasFile(path)
    t.equal(file.padding.padding, padding, JSON.stringify(options))
    t.match(file.padding.reason, reason)
    t.equal(file.padding.assumed, /not listed/.test(reason.source) ? true : undefined, 'an assumption is marked as one')
    t.same(differences(file.weights, weights), [], 'every tensor round-trips bit for bit')
    t.equal(file.layout, 'layout' in options ? 'model' : 'save_weights')
    t.equal(file.headLayer, 'headLayer' in options ? options.headLayer : 'dense_1')
  }
  t.match(detectPadding(['input_1', 'conv1', 'conv1_bn', 'conv_dw_1']), { padding: 'keras', reason: /no ZeroPadding2D layers: TF 'same' padding/ })
})
