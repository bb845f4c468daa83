import t, { type Test } from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { RedisStore, type BypassReason } from '../../src/cache/redis-store.js'
import { missingTool } from '../deploy/helpers.js'
import { redisMissing, startRedis, type RedisServer } from '../helpers/redis.js'

const missing = redisMissing()
if (missing) missingTool(t, 'redis-server', missing)
else {
  let redis: RedisServer
  t.before(async () => {
    redis = await startRedis()
  })
  t.teardown(() => redis.stop())

  function open(t: Test, options: Partial<ConstructorParameters<typeof RedisStore>[0]> = {}) {
    const bypasses: BypassReason[] = []
    const warnings: object[] = []
    const store = new RedisStore({
      url: redis.url,
      timeoutMs: 50,
      ttlSeconds: 60,
      maxValueBytes: 1024,
      warnIntervalMs: 60_000,
      log: { warn: (obj) => warnings.push(obj) },
      onBypass: (r) => bypasses.push(r),
      ...options,
    })
    t.teardown(() => store.close())
    return { store, bypasses, warnings }
  }

  async function ready(store: RedisStore): Promise<void> {
    for (let i = 0; i < 100 && store.status !== 'ready'; i++) await sleep(20)
    if (store.status !== 'ready') throw new Error(`not ready: ${store.status}`)
  }

  t.test('values round-trip with a TTL, under the key prefix', async (t) => {
    const { store, bypasses } = open(t, { keyPrefix: `test-${process.pid}:` })
    await ready(store)
    await store.setMany([
      ['a', '1'],
      ['b', '2'],
    ])
    t.same(await store.getMany(['a', 'nope', 'b']), ['1', undefined, '2'])
    const { Redis } = await import('ioredis')
    const raw = new Redis(redis.url)
    t.teardown(() => raw.disconnect())
    const ttl = await raw.ttl(`test-${process.pid}:a`)
    t.ok(ttl > 0 && ttl <= 60, `TTL set (${ttl} s)`)
    t.same(bypasses, [])
  })

  t.test('values over the bound are neither written nor trusted', async (t) => {
    const { store, bypasses } = open(t)
    await ready(store)
    await store.setMany([['big', 'x'.repeat(2000)]])
    t.same(await store.getMany(['big']), [undefined], 'not written')
    const { Redis } = await import('ioredis')
    const raw = new Redis(redis.url, { keyPrefix: 'nima:' })
    t.teardown(() => raw.disconnect())
    await raw.set('foreign', 'y'.repeat(2000))
    t.same(await store.getMany(['foreign']), [undefined], 'an oversized value read is a miss')
    t.same(bypasses, ['too_large', 'too_large'])
  })

  t.test('an unreachable Redis is bypassed at once, and warned about once per interval', async (t) => {
    const { store, bypasses, warnings } = open(t, { url: 'redis://127.0.0.1:1' })
    const started = performance.now()
    for (let i = 0; i < 20; i++) t.equal(await store.getMany(['a']), undefined)
    await store.setMany([['a', '1']])
    t.ok(performance.now() - started < 1000, 'no operation waited for a connection')
    t.equal(bypasses.filter((r) => r === 'unavailable').length, 21)
    t.equal(warnings.length, 1, 'one warning for the interval')
  })

  t.test('a stalled Redis: each read gives up at the timeout, and outstanding commands are bounded', async (t) => {
    const { store, bypasses } = open(t, { maxPending: 5 })
    await ready(store)
    redis.pause()
    t.teardown(() => redis.resume())
    const started = performance.now()
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => store.getMany([`k${i}`])))
    const ms = performance.now() - started
    t.same(results, Array(20).fill(undefined), 'every read bypassed')
    t.ok(ms < 1000, `answered in ${ms.toFixed(0)} ms (timeout 50 ms)`)
    t.equal(bypasses.filter((r) => r === 'timeout').length, 5, 'the first five were sent and timed out')
    t.equal(bypasses.filter((r) => r === 'busy').length, 15, 'the rest were never sent')
    t.ok(store.pending <= 5, `${store.pending} commands outstanding`)
    redis.resume()
    for (let i = 0; i < 100 && store.pending > 0; i++) await sleep(20)
    t.same(await store.getMany(['k0']), [undefined], 'answers again once resumed')
    t.equal(bypasses.length, 20)
  })
}
