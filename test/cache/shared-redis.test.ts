import t, { type Test } from 'tap'
import { readFileSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import { metricSample } from '../helpers/metrics.js'
import { samplePhotos } from '../helpers/paths.js'
import { missingTool } from '../deploy/helpers.js'
import { redisMissing, startRedis, type RedisServer } from '../helpers/redis.js'
import { startTestService, type RunningService } from '../helpers/service.js'

// The score cache shared by instances through a real redis-server, and the rule that
// Redis can never fail or slow a request: killed or stalled, it is bypassed.

const photos = samplePhotos().map((p) => readFileSync(p))

async function score(svc: RunningService, bytes: Buffer): Promise<{ status: number; body: Record<string, any>; ms: number }> {
  const started = performance.now()
  const r = await fetch(`${svc.url}/score`, { method: 'POST', headers: { 'content-type': 'application/octet-stream' }, body: bytes })
  return { status: r.status, body: (await r.json()) as Record<string, any>, ms: performance.now() - started }
}

async function metric(svc: RunningService, name: string, ...labels: string[]): Promise<number> {
  return metricSample(await (await fetch(`${svc.url}/metrics`)).text(), name, ...labels)
}

/**
 * Writes to Redis are not awaited by the request: waits (10 s at most) until those of
 * `photos` photos have landed, an image's info and one score per model (3 keys a photo),
 * rather than for a fixed time that a loaded machine can overrun. Returns the key count.
 */
async function writesLanded(redis: RedisServer, photos: number): Promise<number> {
  const { Redis } = await import('ioredis')
  const client = new Redis(redis.url)
  try {
    const deadline = performance.now() + 10_000
    while ((await client.dbsize()) < photos * 3 && performance.now() < deadline) await sleep(20)
    return await client.dbsize()
  } finally {
    await client.quit()
  }
}

const missing = redisMissing()
if (missing) missingTool(t, 'redis-server', missing)
else {
  let redis: RedisServer
  t.beforeEach(async () => {
    redis = await startRedis()
  })
  t.afterEach(() => redis.stop())

  t.test('two instances share results through Redis: the second runs no inference', async (t) => {
    const a = await startTestService({ CACHE_URL: redis.url })
    t.teardown(() => a.server.shutdown())
    const b = await startTestService({ CACHE_URL: redis.url })
    t.teardown(() => b.server.shutdown())
    t.equal(await metric(a, 'nima_cache_redis_up'), 1)

    const some = photos.slice(0, 4)
    const fromA = []
    for (const p of some) fromA.push(await score(a, p))
    t.same(
      fromA.map((r) => r.body.cache),
      some.map(() => ({ result: 'miss' })),
    )
    t.equal(await writesLanded(redis, some.length), some.length * 3, "A's writes reached Redis")
    const fromB = []
    for (const p of some) fromB.push(await score(b, p))
    t.same(
      fromB.map((r) => r.body.cache),
      some.map(() => ({ result: 'redis' })),
      'B: every result from Redis',
    )
    t.same(
      fromB.map((r) => r.body.scores),
      fromA.map((r) => r.body.scores),
      'the same scores',
    )
    t.same(
      fromB.map((r) => r.body.image),
      fromA.map((r) => r.body.image),
      'the same image info, perceptual hash included',
    )
    t.equal(await metric(b, 'nima_images_scored_total'), 0, 'B ran no inference')
    t.equal(await metric(b, 'nima_cache_lookups_total', 'layer="redis"', 'result="hit"'), some.length * 3, 'B: image info and two scores per photo from Redis')
    t.same((await score(b, some[0]!)).body.cache, { result: 'memory' }, 'and keeps them in memory')
  })

  t.test('Redis killed mid-load: no request fails, and the cache comes back with Redis', async (t) => {
    // No memory layer: every lookup goes to Redis.
    const svc = await startTestService({ CACHE_URL: redis.url, SCORE_CACHE_MAX_BYTES: 0 })
    t.teardown(() => svc.server.shutdown())
    const total = 60
    const statuses: number[] = []
    let next = 0
    let killed: Promise<void> | undefined
    await Promise.all(
      Array.from({ length: 4 }, async () => {
        while (next < total) {
          const i = next++
          if (i === 20) killed = redis.kill()
          const r = await score(svc, photos[i % photos.length]!)
          statuses.push(r.status)
        }
      }),
    )
    await killed
    t.equal(statuses.length, total)
    t.same(
      statuses.filter((s) => s !== 200),
      [],
      '0 failed requests',
    )
    const bypassed = (await metric(svc, 'nima_cache_bypasses_total', 'reason="unavailable"')) + (await metric(svc, 'nima_cache_bypasses_total', 'reason="error"'))
    t.ok(bypassed > 0, `Redis bypassed ${bypassed} times after the kill`)
    t.equal(await metric(svc, 'nima_cache_redis_up'), 0)

    await redis.restart()
    for (let i = 0; i < 100 && (await metric(svc, 'nima_cache_redis_up')) === 0; i++) await sleep(100)
    t.equal(await metric(svc, 'nima_cache_redis_up'), 1, 'reconnected')
    t.same((await score(svc, photos[0]!)).body.cache, { result: 'miss' }, 'an empty Redis after the restart')
    await writesLanded(redis, 1)
    t.same((await score(svc, photos[0]!)).body.cache, { result: 'redis' }, 'and the cache works again')
  })

  t.test('a stalled Redis (SIGSTOP): requests still answer, each Redis wait cut at CACHE_TIMEOUT_MS', async (t) => {
    const svc = await startTestService({ CACHE_URL: redis.url, SCORE_CACHE_MAX_BYTES: 0, CACHE_TIMEOUT_MS: 50 })
    t.teardown(() => svc.server.shutdown())
    const warm = await score(svc, photos[0]!)
    t.equal(warm.status, 200)
    await writesLanded(redis, 1)
    t.same((await score(svc, photos[0]!)).body.cache, { result: 'redis' })

    redis.pause()
    t.teardown(() => redis.resume())
    const results = []
    for (const p of photos.slice(0, 6)) results.push(await score(svc, p))
    redis.resume()
    t.same(
      results.map((r) => r.status),
      results.map(() => 200),
      'every request answered 200',
    )
    t.same(
      results.map((r) => r.body.cache),
      results.map(() => ({ result: 'miss' })),
      'computed without the cache',
    )
    // Without the timeout a read would wait for as long as Redis stays stopped; 5 s is far
    // above a decode and an inference here and far below the 30 s request deadline.
    for (const r of results) t.ok(r.ms < 5000, `answered in ${r.ms.toFixed(0)} ms`)
    t.ok((await metric(svc, 'nima_cache_bypasses_total', 'reason="timeout"')) >= 6, 'each lookup timed out and was bypassed')
  })
}
