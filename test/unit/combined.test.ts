import t from 'tap'
import { combine, resolveWeights } from '../../src/scoring/combined.js'

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

t.test('one model alone: combined equals its mean whatever its weight', async (t) => {
  t.equal(combine({ technical: 3.3 }, { technical: 0.4 }).score, 3.3)
})

t.test('all weights zero falls back to the plain mean', async (t) => {
  t.equal(combine({ aesthetic: 6, technical: 4 }, { aesthetic: 0, technical: 0 }).score, 5)
})
