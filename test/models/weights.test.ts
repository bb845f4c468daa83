import t from 'tap'
import { EXPECTED_TENSORS } from '../../src/models/architecture.js'
import { isModelError } from '../../src/models/model-error.js'
import { makeTensor, validateWeights, weightProblems, type Tensor } from '../../src/models/weights.js'

function completeSet(): Map<string, Tensor> {
  const weights = new Map<string, Tensor>()
  for (const [name, shape] of EXPECTED_TENSORS) {
    const data = new Float32Array(shape.reduce((n, d) => n * d, 1))
    if (name.endsWith('/moving_variance') || name.endsWith('/gamma')) data.fill(1)
    weights.set(name, makeTensor(shape, data))
  }
  return weights
}

t.test('a complete set passes', async (t) => {
  t.same(weightProblems(completeSet()), [])
  t.doesNotThrow(() => validateWeights(completeSet(), 'test'))
})

t.test('one error lists every missing, mis-shaped and unexpected tensor', async (t) => {
  const weights = completeSet()
  weights.delete('conv_dw_3/depthwise_kernel')
  weights.delete('dense/bias')
  weights.set('conv_pw_5/kernel', makeTensor([1, 1, 256, 128], new Float32Array(256 * 128)))
  weights.set('conv1_bn/beta', makeTensor([16], new Float32Array(16)))
  weights.set('dense_2/kernel', makeTensor([3], new Float32Array(3)))

  let caught: unknown
  try {
    validateWeights(weights, 'weights.hdf5')
  } catch (err) {
    caught = err
  }
  t.ok(isModelError(caught), 'a ModelError')
  const error = caught as Error & { code: string }
  t.equal(error.code, 'MODEL_WEIGHTS_INVALID')
  t.equal(
    error.message,
    [
      'weights from weights.hdf5 do not match NIMA MobileNet v1 (alpha 1.0, 224x224 input, Dense(10) head), 5 problems:',
      '  mis-shaped conv1_bn/beta: expected shape [32], got [16]',
      '  missing conv_dw_3/depthwise_kernel: expected shape [3,3,128,1]',
      '  mis-shaped conv_pw_5/kernel: expected shape [1,1,256,256], got [1,1,256,128]',
      '  missing dense/bias: expected shape [10]',
      '  unexpected dense_2/kernel: shape [3] is not part of MobileNet v1',
    ].join('\n'),
  )
})

t.test('values are checked: NaN and negative variances are named', async (t) => {
  const weights = completeSet()
  const gamma = weights.get('conv_pw_2_bn/gamma')!.data
  gamma[5] = Number.NaN
  weights.get('conv_dw_7_bn/moving_variance')!.data[2] = -0.5
  t.same(weightProblems(weights), [
    'bad values in conv_pw_2_bn/gamma: expected finite numbers, got NaN at index 5',
    'bad values in conv_dw_7_bn/moving_variance: expected variances >= 0, got -0.5 at index 2',
  ])
})

t.test('makeTensor refuses data of the wrong length', async (t) => {
  t.throws(() => makeTensor([2, 3], new Float32Array(5)), { message: 'tensor data: expected 6 values for shape [2,3], got 5' })
})
