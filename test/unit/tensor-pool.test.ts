import t from 'tap'
import { TensorPool } from '../../src/imaging/tensor-pool.js'

t.test('a tensor given back is taken again, by length; at most `keep` idle per length', async (t) => {
  const pool = new TensorPool(2)
  const a = pool.take(12)
  const b = pool.take(12)
  const c = pool.take(12)
  t.equal(a.length, 12)
  t.not(a, b)
  for (const x of [a, b, c]) pool.give(x)
  t.equal(pool.idle, 2, 'the third is left to the collector')
  const other = pool.take(6)
  t.equal(other.length, 6, 'another length is never served from the idle ones')
  t.ok([a, b].includes(pool.take(12)))
  t.ok([a, b].includes(pool.take(12)))
  t.equal(pool.idle, 0)
  t.not(pool.take(12), a)
})

t.test('a tensor given back twice is held once', async (t) => {
  const pool = new TensorPool(4)
  const a = pool.take(3)
  pool.give(a)
  pool.give(a)
  t.equal(pool.idle, 1)
  t.equal(pool.take(3), a)
  t.not(pool.take(3), a)
})

t.test('keep 0 holds nothing; a bad keep is refused', async (t) => {
  const pool = new TensorPool(0)
  pool.give(pool.take(3))
  t.equal(pool.idle, 0)
  for (const bad of [-1, 1.5, Number.NaN]) t.throws(() => new TensorPool(bad), RangeError)
})
