import t from 'tap'
import { Writable } from 'node:stream'
import Fastify from 'fastify'
import { loadConfig } from '../../src/config/load.js'
import scoreCachePlugin from '../../src/cache/cache-plugin.js'

t.test('on by default, in process, 64 MiB; off with SCORE_CACHE=off', async (t) => {
  const c = loadConfig({})
  t.equal(c.SCORE_CACHE, 'on')
  t.equal(c.SCORE_CACHE_MAX_BYTES, 64 * 1024 * 1024)
  t.equal(c.CACHE_URL, '')
  t.equal(c.CACHE_TIMEOUT_MS, 50)
  t.equal(loadConfig({ SCORE_CACHE: 'off' }).SCORE_CACHE, 'off')
})

t.test('bad values are refused, naming the variable, never echoing a Redis password', async (t) => {
  t.throws(() => loadConfig({ SCORE_CACHE: 'maybe' }), /SCORE_CACHE/)
  t.throws(() => loadConfig({ SCORE_CACHE_MAX_BYTES: '-1' }), /SCORE_CACHE_MAX_BYTES/)
  t.throws(() => loadConfig({ CACHE_URL: 'http://cache:6379' }), /CACHE_URL/)
  t.throws(() => loadConfig({ CACHE_TIMEOUT_MS: '0' }), /CACHE_TIMEOUT_MS/)
  let message = ''
  try {
    loadConfig({ CACHE_URL: 'redis://user:s3cret@' })
  } catch (err) {
    message = (err as Error).message
  }
  t.match(message, /CACHE_URL: must be redis:\/\//)
  t.notMatch(message, /s3cret/)
  t.equal(loadConfig({ CACHE_URL: 'rediss://user:pw@cache.internal:6380/2' }).CACHE_URL, 'rediss://user:pw@cache.internal:6380/2')
})

t.test('the plugin logs what it opened, without the password, and closes Redis with the app', async (t) => {
  const lines: string[] = []
  const stream = new Writable({
    write(chunk, _enc, done) {
      lines.push(String(chunk))
      done()
    },
  })
  const app = Fastify({ logger: { level: 'info', stream } })
  // Port 1: nothing listens; the cache opens anyway and bypasses Redis.
  await app.register(scoreCachePlugin, { config: loadConfig({ CACHE_URL: 'redis://user:s3cret@127.0.0.1:1', CACHE_WARN_INTERVAL_MS: '600000' }) })
  await app.ready()
  t.ok(app.scoreCache?.memory, 'an in-process layer')
  t.ok(app.scoreCache?.redis, 'a Redis layer')
  const opened = lines.map((l) => JSON.parse(l)).find((l) => l.msg === 'score cache')
  t.same(opened?.scoreCache, { enabled: true, memoryMaxBytes: 64 * 1024 * 1024, redis: 'redis://127.0.0.1:1', timeoutMs: 50, ttlSeconds: 604800 })
  await app.close()
  for (let i = 0; i < 50 && app.scoreCache?.redis?.status !== 'end'; i++) await new Promise((r) => setTimeout(r, 20))
  t.equal(app.scoreCache?.redis?.status, 'end', 'disconnected on close, no reconnecting')
  t.notOk(lines.some((l) => l.includes('s3cret')), 'the password is never logged')

  const off = Fastify()
  await off.register(scoreCachePlugin, { config: loadConfig({ SCORE_CACHE: 'off' }) })
  await off.ready()
  t.equal(off.scoreCache, undefined, 'SCORE_CACHE=off: no cache')
  await off.close()
})
