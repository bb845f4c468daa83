import t from 'tap'
import { crossValidateByGroup, type LabelledScore } from '../../src/calibration/cross-validate.js'
import { applyIsotonic, checkMap, fitIsotonic } from '../../src/calibration/isotonic.js'
import { ksStatistic } from '../../src/calibration/ks.js'
import { cdfAt, checkTable, percentileOf, quantileTable } from '../../src/calibration/quantiles.js'
import { ScoreWindows } from '../../src/calibration/score-windows.js'

/** A seeded uniform generator (mulberry32), so the statistical checks are reproducible. */
function rng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let x = a
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

t.test('quantile table: Hazen positions, 1001 steps, ends at min and max', async (t) => {
  const table = quantileTable([3, 1, 2, 4])
  t.equal(table.length, 1001)
  t.equal(table[0], 1)
  t.equal(table[1000], 4)
  // (i − ½)/n: the 2nd of 4 sits at p = 0.375, the 3rd at 0.625, the median halfway.
  t.equal(table[375], 2)
  t.equal(table[625], 3)
  t.equal(table[500], 2.5)
  t.equal(checkTable(table), undefined)
  t.throws(() => quantileTable([]), /no values/)
  t.throws(() => quantileTable([1, Number.NaN]), /non-finite/)
  t.match(checkTable([2, 1]), /not sorted/)
  t.match(checkTable([1]), /at least 2/)
})

t.test('a catalogue photo gets back its mid-rank share of the catalogue', async (t) => {
  const random = rng(7)
  const n = 37
  const values = Array.from({ length: n }, () => 4 + 3 * random())
  const table = quantileTable(values)
  const sorted = [...values].sort((a, b) => a - b)
  sorted.forEach((v, i) => {
    const expected = (100 * (i + 0.5)) / n
    const got = percentileOf(table, v)
    // Interior points land on (i − ½)/n to the table's 0.1-point resolution; the two ends
    // sit in the flat run the table holds below the first and above the last position.
    const tolerance = i === 0 || i === n - 1 ? 100 / n / 2 + 0.1 : 0.1
    t.ok(Math.abs(got - expected) <= tolerance, `rank ${i + 1}: ${got.toFixed(2)} vs ${expected.toFixed(2)}`)
  })
  t.equal(percentileOf(table, sorted[0]! - 1), 0, 'below the catalogue: 0')
  t.equal(percentileOf(table, sorted[n - 1]! + 1), 100, 'above the catalogue: 100')
  t.throws(() => percentileOf(table, Number.NaN))
})

t.test('on a large catalogue the percentile matches the empirical CDF to 0.1 point', async (t) => {
  const random = rng(11)
  const values = Array.from({ length: 20_000 }, () => random() * random() * 9 + 1)
  const table = quantileTable(values)
  const sorted = [...values].sort((a, b) => a - b)
  let worst = 0
  for (let probe = 0; probe < 500; probe++) {
    const x = 1 + 9 * random()
    let below = 0
    while (below < sorted.length && sorted[below]! < x) below++
    worst = Math.max(worst, Math.abs(percentileOf(table, x) - (100 * below) / sorted.length))
  }
  t.ok(worst <= 0.11, `largest gap ${worst.toFixed(3)} points`)
})

t.test('ties: a score many photos share gets the middle of their share', async (t) => {
  // Half the catalogue scores exactly 5.
  const values = [...Array.from({ length: 50 }, () => 5), ...Array.from({ length: 50 }, (_, i) => 6 + i / 100)]
  const table = quantileTable(values)
  const p = percentileOf(table, 5)
  // The run of 5s spans p = 0 … 0.495 (the 50th of 100 sits at 49.5/100): its middle.
  t.ok(Math.abs(p - 24.75) < 0.1, `percentile of the tied score: ${p}`)
  const { below, atOrBelow } = cdfAt(table, 5)
  t.equal(below, 0)
  t.ok(Math.abs(atOrBelow - 0.495) < 0.002, `F(5) = ${atOrBelow}`)
})

t.test('isotonic regression by pool-adjacent-violators', async (t) => {
  // Violators pooled: (2, 3) → 2.5.
  const map = fitIsotonic([
    { x: 1, y: 1 },
    { x: 2, y: 3 },
    { x: 3, y: 2 },
    { x: 4, y: 4 },
  ])
  t.same(map, { x: [1, 2, 3, 4], y: [1, 2.5, 2.5, 4] })
  t.equal(checkMap(map), undefined)
  t.equal(applyIsotonic(map, 0), 1, 'flat below the first knot')
  t.equal(applyIsotonic(map, 9), 4, 'flat above the last')
  t.equal(applyIsotonic(map, 1.5), 1.75, 'linear between knots')
  t.equal(applyIsotonic(map, 2.7), 2.5)

  // Equal x pooled first, weights respected: (x=1: 2 and 4 with weights 1 and 3) → 3.5.
  t.same(fitIsotonic([{ x: 1, y: 2 }, { x: 1, y: 4, weight: 3 }, { x: 2, y: 5 }]), { x: [1, 2], y: [3.5, 5] })
  // A decreasing sequence pools into one block: the weighted mean.
  t.same(fitIsotonic([{ x: 1, y: 3 }, { x: 2, y: 2 }, { x: 3, y: 1 }]), { x: [1, 3], y: [2, 2] })

  // Against brute force: the fit is monotone and no worse than any monotone step tried.
  const random = rng(3)
  const pts = Array.from({ length: 60 }, () => {
    const x = random() * 10
    return { x, y: Math.sqrt(x) + (random() - 0.5) * 2 }
  })
  const fit = fitIsotonic(pts)
  t.equal(checkMap(fit), undefined, 'knots increase, values do not decrease')
  const sse = (f: (x: number) => number) => pts.reduce((a, p) => a + (f(p.x) - p.y) ** 2, 0)
  const fitted = sse((x) => applyIsotonic(fit, x))
  t.ok(fitted <= sse((x) => Math.sqrt(x)) + 1e-9, 'beats the true curve in-sample')
  t.ok(fitted <= sse(() => pts.reduce((a, p) => a + p.y, 0) / pts.length) + 1e-9, 'beats the constant')

  t.throws(() => fitIsotonic([]), /no points/)
  t.throws(() => fitIsotonic([{ x: 1, y: 1, weight: 0 }]), /weight/)
  t.match(checkMap({ x: [1, 1], y: [1, 2] }), /x knots must increase/)
  t.match(checkMap({ x: [1, 2], y: [2, 1] }), /must not decrease/)
})

t.test('cross-validation by group: groups held out together, three predictions compared', async (t) => {
  const random = rng(5)
  // Raters use the whole scale while the model crowds into 4.5–6.5: a monotone map helps.
  const items: LabelledScore[] = []
  for (let g = 0; g < 10; g++) {
    for (let i = 0; i < 12; i++) {
      const x = 4.5 + 2 * random()
      items.push({ x, y: 1 + 8 * ((x - 4.5) / 2) ** 2 + (random() - 0.5), group: `hotel-${g}` })
    }
  }
  const cv = crossValidateByGroup(items, { folds: 5, seed: 1 })!
  t.equal(cv.folds, 5)
  t.equal(cv.groups, 10)
  t.equal(cv.images, 120)
  t.ok(cv.after.rmse < cv.before.rmse, `after ${cv.after.rmse.toFixed(3)} < before ${cv.before.rmse.toFixed(3)}`)
  t.ok(cv.after.rmse < cv.constant.rmse, `after ${cv.after.rmse.toFixed(3)} < constant ${cv.constant.rmse.toFixed(3)}`)
  t.ok(cv.after.mae > 0, 'held-out error is not zero (the noise is real)')
  t.same(crossValidateByGroup(items, { folds: 5, seed: 1 }), cv, 'deterministic for a seed')
  t.equal(crossValidateByGroup(items.map((i) => ({ ...i, group: 'one' }))), undefined, 'one group: nothing to hold out')
  t.equal(crossValidateByGroup(items.slice(0, 24), { folds: 5 })!.folds, 2, 'folds capped by the groups')
  t.throws(() => crossValidateByGroup(items, { folds: 1 }), /folds/)

  // A model whose score carries nothing about the ratings: the map must not beat the constant by much.
  const noise: LabelledScore[] = items.map((i) => ({ ...i, x: random() }))
  const cvNoise = crossValidateByGroup(noise)!
  t.ok(cvNoise.after.rmse > cvNoise.constant.rmse * 0.9, `no signal: after ${cvNoise.after.rmse.toFixed(3)} ≈ constant ${cvNoise.constant.rmse.toFixed(3)}`)
})

t.test('KS statistic against a quantile table', async (t) => {
  const random = rng(9)
  const catalogue = Array.from({ length: 5000 }, () => random())
  const table = quantileTable(catalogue)
  const same = Array.from({ length: 500 }, () => random())
  const dSame = ksStatistic(same, table)
  t.ok(dSame < 1.63 / Math.sqrt(500), `same distribution: D = ${dSame.toFixed(3)} below the 1 % critical value`)
  const shifted = same.map((x) => x * 0.5)
  const dShift = ksStatistic(shifted, table)
  t.ok(Math.abs(dShift - 0.5) < 0.06, `all below the median: D = ${dShift.toFixed(3)} ≈ 0.5`)
  t.equal(ksStatistic([-1, -2], table), 1, 'entirely below the catalogue')
  t.equal(ksStatistic([2], table), 1, 'entirely above')
  // An exact value: one point at the median of a uniform table: max(|0 − .5|, |1 − .5|) = .5.
  t.ok(Math.abs(ksStatistic([0.5], quantileTable([0, 1])) - 0.5) < 1e-9)
  t.throws(() => ksStatistic([], table))
})

t.test('score windows: full windows only, reset when the model file changes', async (t) => {
  const w = new ScoreWindows(3)
  w.push('aesthetic', 'a', 1)
  w.push('aesthetic', 'a', 2)
  t.equal(w.full('aesthetic', 'a'), undefined, 'not full yet')
  w.push('aesthetic', 'a', 3)
  t.same(w.full('aesthetic', 'a')?.sort(), [1, 2, 3])
  w.push('aesthetic', 'a', 4)
  t.same(w.full('aesthetic', 'a')?.sort(), [2, 3, 4], 'the oldest leaves')
  t.equal(w.full('aesthetic', 'b'), undefined, 'another file: not this window')
  w.push('aesthetic', 'b', 5)
  t.equal(w.full('aesthetic', 'a'), undefined, 'a new file starts a new window')
  t.throws(() => new ScoreWindows(0))
})
