import t from 'tap'
import { ENTRY_OVERHEAD_BYTES, MemoryLru, entryBytes } from '../../src/cache/memory-lru.js'

t.test('an entry is charged both strings at two bytes a character, plus the overhead', async (t) => {
  t.equal(entryBytes('ab', 'cde'), 2 * 5 + ENTRY_OVERHEAD_BYTES)
  const lru = new MemoryLru(10_000)
  lru.set('ab', 'cde')
  t.equal(lru.usedBytes, entryBytes('ab', 'cde'))
  lru.set('ab', 'c')
  t.equal(lru.usedBytes, entryBytes('ab', 'c'), 'replacing a value recharges it')
  lru.delete('ab')
  t.equal(lru.usedBytes, 0)
  t.equal(lru.size, 0)
})

t.test('the byte bound holds: the least recently used entries go first', async (t) => {
  const value = 'x'.repeat(100)
  const each = entryBytes('k0', value)
  const lru = new MemoryLru(each * 3)
  lru.set('k0', value)
  lru.set('k1', value)
  lru.set('k2', value)
  t.equal(lru.usedBytes, each * 3)
  t.equal(lru.get('k0'), value, 'k0 read: now the most recently used')
  lru.set('k3', value)
  t.equal(lru.get('k1'), undefined, 'k1, least recently used, was evicted')
  t.equal(lru.get('k0'), value)
  t.equal(lru.get('k2'), value)
  t.equal(lru.get('k3'), value)
  t.equal(lru.evictions, 1)
  t.ok(lru.usedBytes <= lru.maxBytes)
})

t.test('many writes of mixed sizes never exceed the bound', async (t) => {
  const lru = new MemoryLru(50_000)
  for (let i = 0; i < 5000; i++) {
    lru.set(`key-${i}`, 'v'.repeat((i * 37) % 900))
    if (lru.usedBytes > lru.maxBytes) t.fail(`over the bound after ${i} writes: ${lru.usedBytes}`)
  }
  t.ok(lru.size > 10, `${lru.size} entries kept`)
  t.ok(lru.evictions > 0)
  t.equal(lru.get('key-4999'), 'v'.repeat((4999 * 37) % 900), 'the newest entry is there')
})

t.test('an entry larger than the whole bound is not stored, and drops its older value', async (t) => {
  const lru = new MemoryLru(1000)
  lru.set('k', 'small')
  lru.set('k', 'y'.repeat(1000))
  t.equal(lru.get('k'), undefined)
  t.equal(lru.usedBytes, 0)
  const none = new MemoryLru(0)
  none.set('a', 'b')
  t.equal(none.size, 0)
})

t.test('the bound is checked', async (t) => {
  t.throws(() => new MemoryLru(-1), /maxBytes must be an integer ≥ 0, got -1/)
  t.throws(() => new MemoryLru(1.5), /maxBytes must be an integer ≥ 0, got 1.5/)
})
