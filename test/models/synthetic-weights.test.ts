import { createHash } from 'node:crypto'
import t from 'tap'
import { CONV_LAYERS } from '../../src/models/architecture.js'
import { sha256Hex } from '../../src/models/integrity.js'
import { buildOnnxModel } from '../../src/models/onnx-graph.js'
import { mulberry32 } from '../../src/util/prng.js'
import { syntheticWeights } from '../../src/model-tools/synthetic-weights.js'
import { weightProblems, type WeightSet } from '../../src/models/weights.js'

function weightsDigest(weights: WeightSet): string {
  const hash = createHash('sha256')
  for (const [name, tensor] of weights) hash.update(name).update(new Uint8Array(tensor.data.buffer, tensor.data.byteOffset, tensor.data.byteLength))
  return hash.digest('hex')
}

t.test('same seed, same bytes; another seed, other bytes', async (t) => {
  const a = weightsDigest(syntheticWeights(42))
  t.equal(weightsDigest(syntheticWeights(42)), a, 'weights are identical for seed 42')
  t.not(weightsDigest(syntheticWeights(43)), a, 'seed 43 differs')
  const onnx = sha256Hex(buildOnnxModel(syntheticWeights(42)))
  t.equal(sha256Hex(buildOnnxModel(syntheticWeights(42))), onnx, 'the ONNX file sha256 is identical too')
  t.comment(`seed 42: weights sha256 ${a}, onnx sha256 ${onnx}`)
})

t.test('the PRNG is pinned: these numbers must never change', async (t) => {
  // Changing them would silently change every synthetic model's bytes and sha256.
  const rng = mulberry32(1)
  t.same([rng.next(), rng.next(), rng.next()].map((v) => v.toFixed(10)), ['0.6270739406', '0.0027357212', '0.5274470400'])
  const normals = mulberry32(1)
  t.same([normals.normal(), normals.normal()].map((v) => v.toFixed(10)), ['1.4043387784', '0.0241416175'])
  t.equal(
    weightsDigest(syntheticWeights(42)),
    'a76138830e829ea09084bb8976bcd5905ef6ce4e20e6629e1ad34bb1cb49ad7c',
    'seed 42 weights digest (update deliberately if the generator changes)',
  )
})

t.test('weights are complete and shaped like a trained network', async (t) => {
  const weights = syntheticWeights(7)
  t.same(weightProblems(weights), [], 'all 137 tensors, right shapes, finite, variances >= 0')
  let minVar = Infinity
  let maxVar = 0
  let gammaSum = 0
  let gammaCount = 0
  for (const layer of CONV_LAYERS) {
    for (const v of weights.get(`${layer.batchNorm}/moving_variance`)!.data) {
      minVar = Math.min(minVar, v)
      maxVar = Math.max(maxVar, v)
    }
    for (const g of weights.get(`${layer.batchNorm}/gamma`)!.data) {
      gammaSum += g
      gammaCount++
    }
  }
  t.ok(minVar > 0.0099 && minVar < 0.02, `variances reach down to ~0.01 (min ${minVar})`)
  t.ok(maxVar < 10.01 && maxVar > 5, `variances reach up to ~10 (max ${maxVar})`)
  t.ok(Math.abs(gammaSum / gammaCount - 1) < 0.05, `gamma averages about 1 (${gammaSum / gammaCount})`)
  const means = weights.get('conv_pw_7_bn/moving_mean')!.data
  t.ok(new Set(means).size === means.length, 'moving means vary per channel')
})

t.test('seed must be a 32-bit unsigned integer', async (t) => {
  t.throws(() => syntheticWeights(-1), { message: 'seed: expected an integer from 0 to 4294967295, got -1' })
  t.throws(() => syntheticWeights(1.5), { message: 'seed: expected an integer from 0 to 4294967295, got 1.5' })
})
