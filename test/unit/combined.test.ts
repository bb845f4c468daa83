import t from 'tap'
import { combine, normalizeWeights, resolveWeights } from '../../src/scoring/combined.js'

const models = [
  { id: 'aesthetic', task: 'aesthetic' },
  { id: 'technical', task: 'technical' },
]
const defaults = { aesthetic: 0.6, technical: 0.4 }

t.test('combined is the weighted mean of model means', async (t) => {
  const w = resolveWeights(models, defaults)
  t.same(w, defaults)
  const c = combine({ aesthetic: 6, technical: 4 }, w)
  t.ok(Math.abs(c.score - 5.2) < 1e-12)
})

t.test('request weights override defaults; unnamed models keep theirs', async (t) => {
  t.same(resolveWeights(models, defaults, { technical: 1 }), { aesthetic: 0.6, technical: 1 })
})

t.test('a fine-tuned model inherits the default weight of its task', async (t) => {
  t.same(resolveWeights([{ id: 'aesthetic-hotel', task: 'aesthetic' }], defaults), { 'aesthetic-hotel': 0.6 })
})

t.test('one model alone: combined equals its mean whatever its weight, and its share reads 1', async (t) => {
  t.same(combine({ technical: 3.3 }, { technical: 0.4 }), { score: 3.3, weights: { technical: 1 } })
})

t.test('the weights reported are the shares applied: w / Σ w, summing to 1', async (t) => {
  const c = combine({ aesthetic: 6, technical: 4 }, { aesthetic: 3, technical: 1 })
  t.same(c.weights, { aesthetic: 0.75, technical: 0.25 })
  t.equal(c.score, 0.75 * 6 + 0.25 * 4)
  t.same(combine({ aesthetic: 6, technical: 4 }, defaults).weights, defaults, 'defaults that already sum to 1 are shown as configured')
  t.same(normalizeWeights({ aesthetic: 2, technical: 2 }), { aesthetic: 0.5, technical: 0.5 })
})

t.test('all weights zero falls back to the plain mean, with equal shares', async (t) => {
  t.same(combine({ aesthetic: 6, technical: 4 }, { aesthetic: 0, technical: 0 }), { score: 5, weights: { aesthetic: 0.5, technical: 0.5 } })
})
