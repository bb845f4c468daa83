import t from 'tap'
import { proofGap } from '../../src/model-tools/conversion-proof.js'
import { photoLikeImage, photoProofInputs, syntheticProofInputs } from '../../src/model-tools/proof-inputs.js'
import { mulberry32 } from '../../src/util/prng.js'
import { normalizationTable } from '../../src/imaging/tensor.js'
import { sharedImages } from '../helpers/paths.js'
import { join } from 'node:path'

const spec = { width: 224, height: 224, lut: normalizationTable(1 / 127.5, -1) }

t.test('seeded photo-like images are reproducible, photo-like and differ by seed', async (t) => {
  const a = photoLikeImage(mulberry32(18), 64, 48)
  t.same(a, photoLikeImage(mulberry32(18), 64, 48), 'same seed, same pixels')
  const b = photoLikeImage(mulberry32(19), 64, 48)
  let differing = 0
  for (let i = 0; i < a.data.length; i++) if (a.data[i] !== b.data[i]) differing++
  t.ok(differing > a.data.length / 2, `another seed changes most pixels (${differing}/${a.data.length})`)
  const levels = new Set(a.data)
  t.ok(levels.size > 100, `many grey levels, not a flat or binary image (${levels.size})`)
})

t.test('synthetic proof inputs are model tensors in [-1, 1]', async (t) => {
  const inputs = syntheticProofInputs(18, 2, spec)
  t.equal(inputs.kind, 'synthetic')
  t.same(inputs.labels, ['synthetic-18-0', 'synthetic-18-1'])
  t.equal(inputs.tensors.length, 2)
  for (const tensor of inputs.tensors) {
    t.equal(tensor.length, 224 * 224 * 3)
    t.ok(tensor.every((v) => v >= -1 && v <= 1))
  }
})

t.test('photo inputs skip what does not decode and stop at the count', async (t) => {
  const paths = [join(sharedImages, 'natural/truncated-broken.jpg'), join(sharedImages, 'natural/chelsea.png'), join(sharedImages, 'idealo/42039.jpg'), join(sharedImages, 'idealo/42040.jpg')]
  const inputs = await photoProofInputs(paths, 2, spec, 100_000_000)
  t.same(inputs.labels, ['chelsea.png', '42039.jpg'])
  t.equal(inputs.skipped.length, 1)
  t.match(inputs.skipped[0], { photo: /truncated-broken\.jpg$/ })
  t.notMatch(inputs.skipped[0]!.reason, /ENOENT/, 'skipped because it does not decode, not because it is missing')
})

t.test('proofGap: largest bin and mean differences, and the worst input', async (t) => {
  const p = [Float32Array.from([0.5, 0.5]), Float32Array.from([0.25, 0.75])]
  const ref = [Float64Array.from([0.5, 0.5]), Float64Array.from([0.5, 0.5])]
  t.same(proofGap(p, ref), { maxAbsDeltaP: 0.25, maxAbsDeltaMean: 0.25, worst: 1 })
  t.throws(() => proofGap(p, ref.slice(1)), RangeError)
})
