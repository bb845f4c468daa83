import t from 'tap'
import { cloneHead, headPredict, type Head } from '../../src/finetune/head.js'
import { meanOf } from '../../src/scoring/distribution.js'
import { mulberry32 } from '../../src/util/prng.js'
import { splitByGroup } from '../../src/finetune/split.js'
import { histogramDistribution, ratingDistribution, targetsByImage } from '../../src/finetune/targets.js'
import { DEFAULT_RATING_STD, estimateRatingStd } from '../../src/labels/rating-spread.js'
import {
  featureStats,
  fromStandardized,
  meanEmd,
  shuffledIndices,
  standardizeSamples,
  toStandardized,
  trainHead,
  type Sample,
} from '../../src/finetune/train.js'

const INPUTS = 16

/** A toy task: the label mean grows with feature 0 (a small variation on a large offset, like pooled MobileNet features). */
function toyData(n: number, seed: number): Sample[] {
  const rng = mulberry32(seed)
  return Array.from({ length: n }, () => {
    const signal = rng.uniform(0, 1)
    const features = Float64Array.from({ length: INPUTS }, (_, i) => (i === 0 ? 2 + 0.05 * signal : 1 + 0.02 * rng.normal()))
    const rating = Math.max(1, Math.min(10, Math.round(2 + 7 * signal)))
    return { features, target: ratingDistribution(rating, 1) }
  })
}

function zeroHead(): Head {
  return { inputs: INPUTS, outputs: 10, kernel: new Float64Array(INPUTS * 10), bias: new Float64Array(10) }
}

t.test('rating → discrete Gaussian; histogram → normalised; several labels averaged', async (t) => {
  const p = ratingDistribution(5, 1.4)
  t.ok(Math.abs(p.reduce((a, b) => a + b, 0) - 1) < 1e-12)
  t.ok(Math.abs(meanOf(p) - 5.0) < 0.06, 'a mid rating keeps its mean (nearly symmetric)')
  t.ok(p[4]! > p[3]! && p[4]! > p[5]!, 'peak at the rating')
  const top = ratingDistribution(10, 1.4)
  t.ok(meanOf(top) < 10 && meanOf(top) > 9, 'truncation pulls an extreme rating inwards')
  t.ok(meanOf(ratingDistribution(9, 1.4)) < meanOf(top), 'order is kept')
  t.throws(() => ratingDistribution(11, 1), /integer from 1 to 10/)
  t.throws(() => ratingDistribution(3, 0), /positive/)
  t.same([...histogramDistribution([0, 0, 1, 3, 0, 0, 0, 0, 0, 0])], [0, 0, 0.25, 0.75, 0, 0, 0, 0, 0, 0])
  t.throws(() => histogramDistribution(new Array(10).fill(0)), /all bins are 0/)
  const targets = targetsByImage(
    [
      { imageId: 'a', rater: 'x', rating: 4 },
      { imageId: 'a', rater: 'y', histogram: [0, 0, 0, 0, 0, 0, 0, 0, 0, 2] },
      { imageId: 'b', rater: 'x', rating: 7 },
    ],
    1,
  )
  const a = targets.get('a')!
  t.equal(a.count, 2)
  t.ok(Math.abs(a.target[9]! - (0.5 + 0.5 * ratingDistribution(4, 1)[9]!)) < 1e-12, 'equal-weight average of the two labels')
})

t.test('σ estimate: pooled within-image std of repeated ratings, else the default', async (t) => {
  t.same(estimateRatingStd([{ imageId: 'a', rater: 'x', rating: 5 }]).sigma, DEFAULT_RATING_STD)
  // 25 images, each rated 4 and 6 → within-image variance 2 (n-1 = 1) → σ = sqrt(2)
  const records = Array.from({ length: 25 }, (_, i) => [
    { imageId: `i${i}`, rater: 'x', rating: 4 },
    { imageId: `i${i}`, rater: 'y', rating: 6 },
  ]).flat()
  const e = estimateRatingStd(records)
  t.equal(e.source, 'data')
  t.equal(e.dof, 25)
  t.ok(Math.abs(e.sigma - Math.SQRT2) < 1e-12)
  const agree = estimateRatingStd(records.map((r) => ({ ...r, rating: 5 })))
  t.equal(agree.sigma, 0.5, 'clamped to the lower bound')
})

t.test('split by group: deterministic, no group on two sides, fractions respected', async (t) => {
  const items = Array.from({ length: 200 }, (_, i) => ({ id: i, group: `g${i % 40}` }))
  const a = splitByGroup(items, (x) => x.group, { testFraction: 0.2, valFraction: 0.1, seed: 1 })
  const b = splitByGroup([...items].reverse(), (x) => x.group, { testFraction: 0.2, valFraction: 0.1, seed: 1 })
  const groups = (xs: { group: string }[]) => new Set(xs.map((x) => x.group))
  t.same([...groups(a.test)].sort(), [...groups(b.test)].sort(), 'input order does not matter')
  t.equal(groups(a.test).size, 8)
  t.equal(groups(a.val).size, 3, '10% of the 32 remaining groups')
  t.equal(a.train.length + a.val.length + a.test.length, 200)
  for (const g of groups(a.test)) t.notOk(groups(a.train).has(g) || groups(a.val).has(g), `${g} only in test`)
  const c = splitByGroup(items, (x) => x.group, { testFraction: 0.2, valFraction: 0.1, seed: 2 })
  t.not([...groups(c.test)].sort().join(), [...groups(a.test)].sort().join(), 'another seed, another split')
  t.throws(() => splitByGroup(items, (x) => x.group, { testFraction: 1, valFraction: 0, seed: 1 }), /testFraction/)
})

t.test('standardisation is an exact reparameterisation of the head', async (t) => {
  const data = toyData(50, 1)
  const rng = mulberry32(9)
  const head: Head = { ...zeroHead(), kernel: Float64Array.from({ length: INPUTS * 10 }, () => rng.normal()), bias: Float64Array.from({ length: 10 }, () => rng.normal()) }
  const stats = featureStats(data, INPUTS)
  const z = standardizeSamples(data, stats)
  const std = toStandardized(head, stats)
  for (let i = 0; i < 5; i++) {
    const a = headPredict(head, data[i]!.features)
    const b = headPredict(std, z[i]!.features)
    for (let k = 0; k < 10; k++) t.ok(Math.abs(a[k]! - b[k]!) < 1e-12)
  }
  const back = fromStandardized(std, stats, head)
  for (let k = 0; k < head.kernel.length; k++) t.ok(Math.abs(back.kernel[k]! - head.kernel[k]!) < 1e-9)
})

t.test('training lowers the EMD, spreads the predictions and is reproducible', async (t) => {
  const train = toyData(120, 1)
  const val = toyData(40, 2)
  const test = toyData(40, 3)
  const options = { epochs: 60, learningRate: 0.01, weightDecay: 0, batchSize: 16, patience: 60, seed: 4 }
  const r1 = trainHead(zeroHead(), train, val, options)
  const r2 = trainHead(zeroHead(), train, val, options)
  t.same([...r1.head.kernel], [...r2.head.kernel], 'same seed, same weights')
  t.ok(meanEmd(r1.head, test) < 0.6 * meanEmd(zeroHead(), test), `held-out EMD ${meanEmd(r1.head, test).toFixed(4)} vs ${meanEmd(zeroHead(), test).toFixed(4)}`)
  const means = test.map((s) => meanOf(headPredict(r1.head, s.features)))
  t.ok(Math.max(...means) - Math.min(...means) > 4, 'predictions use the scale')
  const r3 = trainHead(zeroHead(), train, val, { ...options, seed: 5 })
  t.not(r3.head.kernel[0], r1.head.kernel[0], 'another seed shuffles differently')
  t.equal(r1.history[0]!.epoch, 0, 'epoch 0 is the starting head')
})

t.test('early stopping keeps the best validation epoch and restores its weights', async (t) => {
  const train = toyData(60, 1)
  // validation labels that contradict training: the longer it trains, the worse val gets
  const val = toyData(30, 2).map((s) => ({ ...s, target: Array.from(s.target).reverse() }))
  const start = zeroHead()
  const r = trainHead(start, train, val, { epochs: 200, learningRate: 0.01, weightDecay: 0, batchSize: 16, patience: 5, seed: 1 })
  t.ok(r.stoppedEarly)
  t.ok(r.history.length - 1 < 200)
  t.equal(r.history.length - 1, r.bestEpoch + 5, 'stopped `patience` epochs after the best')
  t.ok(Math.abs(meanEmd(r.head, val) - r.bestValEmd) < 1e-12, 'returned weights are the best ones')
  t.same([...start.kernel], [...cloneHead(zeroHead()).kernel], 'the starting head is not modified')
})

t.test('weight decay shrinks the kernel; bad options are refused with their name', async (t) => {
  const train = toyData(60, 1)
  const base = { epochs: 30, learningRate: 0.01, batchSize: 16, patience: 5, seed: 1, standardize: false }
  const norm = (h: Head) => Math.sqrt(h.kernel.reduce((a, b) => a + b * b, 0))
  const plain = trainHead(zeroHead(), train, [], { ...base, weightDecay: 0 })
  const decayed = trainHead(zeroHead(), train, [], { ...base, weightDecay: 5 })
  t.ok(norm(decayed.head) < norm(plain.head))
  t.throws(() => trainHead(zeroHead(), train, [], { ...base, weightDecay: 0, epochs: 1.5 }), /epochs: expected an integer >= 0, got 1.5/)
  t.throws(() => trainHead(zeroHead(), train, [], { ...base, weightDecay: 0, learningRate: -1 }), /learningRate: expected a positive number, got -1/)
  t.throws(() => trainHead(zeroHead(), [], [], { ...base, weightDecay: 0 }), /0 training samples/)
})

t.test('shuffles are permutations driven by the seed', async (t) => {
  const a = shuffledIndices(10, mulberry32(1))
  t.same([...a].sort((x, y) => x - y), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
  t.same([...shuffledIndices(10, mulberry32(1))], [...a])
})
