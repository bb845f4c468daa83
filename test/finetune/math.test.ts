import t from 'tap'
import { mulberry32 } from '../../src/util/prng.js'
import {
  cdf,
  emd,
  emdWithGradient,
  evaluate,
  pearson,
  rankWithTies,
  softmax,
  spearman,
  std,
  thresholdAccuracy,
} from '../../src/finetune/math.js'
import { meanOf } from '../../src/scoring/distribution.js'
import { batchLossAndGradient } from '../../src/finetune/train.js'
import type { Head } from '../../src/finetune/head.js'

const close = (a: number, b: number, eps = 1e-12) => Math.abs(a - b) <= eps

function randomDistribution(rng: ReturnType<typeof mulberry32>, n = 10): Float64Array {
  return softmax(Array.from({ length: n }, () => 2 * rng.normal()))
}

t.test('softmax is a distribution, shift-invariant and stable for huge logits', async (t) => {
  const p = softmax([1, 2, 3])
  t.ok(close(p.reduce((a, b) => a + b, 0), 1))
  const e = [Math.exp(1), Math.exp(2), Math.exp(3)]
  const z = e[0]! + e[1]! + e[2]!
  t.ok(close(p[2]!, e[2]! / z))
  const shifted = softmax([1001, 1002, 1003])
  for (let i = 0; i < 3; i++) t.ok(close(shifted[i]!, p[i]!, 1e-15), 'adding a constant changes nothing, even past exp overflow')
  t.same([...softmax([-Infinity, 0])], [0, 1])
})

t.test('cdf is the running sum', async (t) => {
  t.same([...cdf([0.1, 0.2, 0.3, 0.4])].map((x) => +x.toFixed(12)), [0.1, 0.3, 0.6, 1])
})

t.test('EMD (r=2): zero for equal distributions, hand-computed values, symmetric', async (t) => {
  const a = [1, 0, 0, 0]
  const b = [0, 0, 0, 1]
  t.equal(emd(a, a), 0)
  // CDF differences: 1, 1, 1, 0 → sqrt(3/4)
  t.ok(close(emd(a, b), Math.sqrt(3 / 4)))
  t.ok(close(emd(b, a), emd(a, b)))
  // one bin apart out of 10: only the first CDF differs by 1 → sqrt(1/10)
  const p = [1, 0, 0, 0, 0, 0, 0, 0, 0, 0]
  const q = [0, 1, 0, 0, 0, 0, 0, 0, 0, 0]
  t.ok(close(emd(p, q), Math.sqrt(1 / 10)))
  t.throws(() => emd([1], [0.5, 0.5]), /same non-zero length/)
})

t.test('emdWithGradient: loss equals emd(softmax(z), q); zero gradient at the optimum', async (t) => {
  const rng = mulberry32(3)
  const z = Array.from({ length: 10 }, () => rng.normal())
  const q = randomDistribution(rng)
  const { loss, p } = emdWithGradient(z, q)
  t.ok(close(loss, emd(softmax(z), q)))
  t.ok(close(p.reduce((a, b) => a + b, 0), 1))
  const at = emdWithGradient(z, softmax(z))
  t.equal(at.loss, 0)
  t.same([...at.grad], new Array(10).fill(0))
  // softmax is shift-invariant, so the gradient sums to zero
  const g = emdWithGradient(z, q).grad
  t.ok(Math.abs(g.reduce((a, b) => a + b, 0)) < 1e-15)
})

function relativeError(a: number, b: number): number {
  return Math.abs(a - b) / Math.max(1e-8, Math.abs(a) + Math.abs(b))
}

t.test('gradient check: analytic ∂EMD/∂logits vs central finite differences (float64)', async (t) => {
  const rng = mulberry32(11)
  let worst = 0
  for (let trial = 0; trial < 25; trial++) {
    const z = Array.from({ length: 10 }, () => 1.5 * rng.normal())
    const q = randomDistribution(rng)
    const { grad } = emdWithGradient(z, q)
    for (let i = 0; i < 10; i++) {
      const h = 1e-6
      const plus = [...z]
      const minus = [...z]
      plus[i]! += h
      minus[i]! -= h
      const numeric = (emd(softmax(plus), q) - emd(softmax(minus), q)) / (2 * h)
      worst = Math.max(worst, relativeError(grad[i]!, numeric))
    }
  }
  t.ok(worst < 1e-5, `worst relative error ${worst.toExponential(2)} < 1e-5`)
})

t.test('gradient check: the head kernel and bias through the batch loss', async (t) => {
  const rng = mulberry32(5)
  const inputs = 6
  const outputs = 10
  const head: Head = {
    inputs,
    outputs,
    kernel: Float64Array.from({ length: inputs * outputs }, () => 0.5 * rng.normal()),
    bias: Float64Array.from({ length: outputs }, () => 0.1 * rng.normal()),
  }
  const samples = Array.from({ length: 7 }, () => ({
    features: Float64Array.from({ length: inputs }, () => rng.uniform(0, 3)),
    target: randomDistribution(rng),
  }))
  const idx = Uint32Array.from(samples.keys())
  const gk = new Float64Array(inputs * outputs)
  const gb = new Float64Array(outputs)
  batchLossAndGradient(head, samples, idx, gk, gb)
  const loss = () => batchLossAndGradient(head, samples, idx, new Float64Array(inputs * outputs), new Float64Array(outputs))
  let worst = 0
  const h = 1e-6
  for (const [param, grad] of [
    [head.kernel, gk],
    [head.bias, gb],
  ] as const) {
    for (let k = 0; k < param.length; k++) {
      const saved = param[k]!
      param[k] = saved + h
      const up = loss()
      param[k] = saved - h
      const down = loss()
      param[k] = saved
      worst = Math.max(worst, relativeError(grad[k]!, (up - down) / (2 * h)))
    }
  }
  t.ok(worst < 1e-5, `worst relative error ${worst.toExponential(2)} < 1e-5`)
})

t.test('Pearson and Spearman, with ties', async (t) => {
  t.ok(close(pearson([1, 2, 3, 4], [2, 4, 6, 8]), 1))
  t.ok(close(pearson([1, 2, 3, 4], [8, 6, 4, 2]), -1))
  t.ok(Number.isNaN(pearson([1, 1, 1], [1, 2, 3])), 'a constant side has no correlation')
  t.same([...rankWithTies([10, 20, 20, 30])], [1, 2.5, 2.5, 4])
  t.same([...rankWithTies([3, 1, 3, 3])], [3, 1, 3, 3])
  // monotone but non-linear: Spearman 1, Pearson < 1
  t.ok(close(spearman([1, 2, 3, 4, 5], [1, 4, 9, 16, 100]), 1))
  t.ok(pearson([1, 2, 3, 4, 5], [1, 4, 9, 16, 100]) < 0.95)
  // ranks [1, 2.5, 2.5, 4, 5] and [1, 4, 2.5, 2.5, 5]: Σdxdy = 7.25, Σdx² = Σdy² = 9.5 → 29/38
  // (what scipy.stats.spearmanr returns; the no-ties formula 1 − 6Σd²/(n(n²−1)) would give 0.775)
  t.ok(close(spearman([1, 2, 2, 3, 4], [1, 3, 2, 2, 5]), 29 / 38, 1e-12))
})

t.test('threshold accuracy, std, meanOf and evaluate', async (t) => {
  t.equal(thresholdAccuracy([4.9, 5, 6, 2], [5.1, 5, 4, 1]), 0.5)
  t.ok(close(std([2, 4, 4, 4, 5, 5, 7, 9]), 2))
  const oneHot = (k: number) => Array.from({ length: 10 }, (_, i) => (i + 1 === k ? 1 : 0))
  t.equal(meanOf(oneHot(7)), 7)
  const m = evaluate([oneHot(3), oneHot(8)], [oneHot(3), oneHot(8)])
  t.equal(m.emd, 0)
  t.equal(m.lcc, 1)
  t.equal(m.srcc, 1)
  t.equal(m.accuracy, 1)
  t.equal(m.predStd, 2.5)
  t.equal(m.mae, 0)
  t.throws(() => evaluate([], []), /0 samples/)
})

t.test('split warnings: tiny label sets and empty splits the user asked for', async (t) => {
  const { splitWarnings, plural } = await import('../../src/finetune/finetune.js')
  t.equal(plural(1, 'group'), '1 group')
  t.equal(plural(3, 'group'), '3 groups')
  const one = splitWarnings(5, 1, { val: [], test: [] }, { valFraction: 0.1, testFraction: 0.2 })
  t.match(one[0], /only 5 labelled images/)
  t.match(one[1], /no test split although --test-split is 0\.2: 1 group cannot spare one/)
  t.match(one[2], /no validation split although --val-split is 0\.1/)
  t.same(splitWarnings(500, 50, { val: [1], test: [1] }, { valFraction: 0.1, testFraction: 0.2 }), [])
  t.same(splitWarnings(500, 50, { val: [], test: [] }, { valFraction: 0, testFraction: 0 }), [], 'no split asked for, none missed')
})
