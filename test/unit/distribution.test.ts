import t from 'tap'
import { meanOf, stdOf, summarize } from '../../src/scoring/distribution.js'

const bins = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]

t.test('mean and std of a distribution over 1..10', async (t) => {
  const oneHot = bins.map((b) => (b === 7 ? 1 : 0))
  t.equal(meanOf(oneHot, bins), 7)
  t.equal(stdOf(oneHot, bins), 0)
  const uniform = bins.map(() => 0.1)
  t.ok(Math.abs(meanOf(uniform, bins) - 5.5) < 1e-12)
  t.ok(Math.abs(stdOf(uniform, bins) - Math.sqrt(8.25)) < 1e-12, 'variance of uniform 1..10 is (n^2-1)/12 = 8.25')
  const twoPoint = bins.map((b) => (b === 1 || b === 10 ? 0.5 : 0))
  t.ok(Math.abs(stdOf(twoPoint, bins) - 4.5) < 1e-12)
})

t.test('summarize refuses a distribution of the wrong length', async (t) => {
  t.throws(() => summarize([0.5, 0.5], bins), /2 bins, expected 10/)
  const s = summarize(new Float32Array([0, 0, 0, 0, 1, 0, 0, 0, 0, 0]), bins)
  t.same(s, { mean: 5, std: 0, distribution: [0, 0, 0, 0, 1, 0, 0, 0, 0, 0] })
})
