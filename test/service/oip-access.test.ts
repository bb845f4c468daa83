import t from 'tap'
import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config/load.js'
import type { RawConfig } from '../../src/config/schema.js'
import { createMetrics } from '../../src/metrics/metrics.js'
import { ServiceState } from '../../src/service-state.js'

// The OIP routes under the app's auth, rate limit and readiness, with no models loaded (so
// no scorer: what needs one answers 503), through inject. The scoring itself is
// test/service/oip.test.ts.

async function app(overrides: Partial<RawConfig> = {}) {
  const state = new ServiceState()
  const instance = await buildApp({ config: loadConfig({}, { LOG_LEVEL: 'silent', ...overrides }), state, metrics: createMetrics() })
  t.teardown(() => instance.close())
  return { app: instance, state }
}

const inferBody = JSON.stringify({ inputs: [{ name: 'image', datatype: 'BYTES', shape: [1], data: ['AAAA'] }] })

t.test('API keys: the OIP probes stay open, everything else needs the key, refusals in the protocol shape', async (t) => {
  const { app: a } = await app({ API_KEYS: 'k1' })
  t.equal((await a.inject('/v2/health/live')).statusCode, 200, 'live needs no key')
  t.equal((await a.inject('/v2/health/ready')).statusCode, 503, 'ready needs no key (and says not ready)')
  for (const [method, url] of [['GET', '/v2'], ['GET', '/v2/models/aesthetic'], ['GET', '/v2/models/aesthetic/ready'], ['POST', '/v2/models/aesthetic/infer']] as const) {
    const res = await a.inject({ method, url, ...(method === 'POST' ? { payload: inferBody, headers: { 'content-type': 'application/json' } } : {}) })
    t.equal(res.statusCode, 401, `${method} ${url} without a key: 401`)
    t.same(res.json(), { error: 'NIMA_UNAUTHORIZED: send an API key as "Authorization: Bearer <key>"' })
    t.equal(res.headers['www-authenticate'], 'Bearer')
  }
  const keyed = await a.inject({ url: '/v2', headers: { authorization: 'Bearer k1' } })
  t.equal(keyed.statusCode, 200)
  t.equal(keyed.json().name, 'nima-serve')
})

t.test('not ready (models loading, then draining): 503 with Retry-After, in the protocol shape', async (t) => {
  const { app: a, state } = await app()
  for (const url of ['/v2/health/ready', '/v2/models/aesthetic', '/v2/models/aesthetic/ready']) {
    const res = await a.inject(url)
    t.equal(res.statusCode, 503, url)
    t.same(res.json(), { error: 'NIMA_NOT_READY: models are still loading' })
    t.equal(res.headers['retry-after'], '1')
  }
  const infer = await a.inject({ method: 'POST', url: '/v2/models/aesthetic/infer', payload: inferBody, headers: { 'content-type': 'application/json' } })
  t.same([infer.statusCode, infer.json()], [503, { error: 'NIMA_NOT_READY: models are still loading' }])
  t.same((await a.inject('/v2/health/live')).json(), { live: true }, 'live all the same')
  state.startDraining()
  t.same((await a.inject('/v2/health/ready')).json(), { error: 'NIMA_NOT_READY: the service is shutting down' })
})

t.test('rate limit: /infer counts against it (429 in the protocol shape), probes and metadata do not', async (t) => {
  const { app: a } = await app({ RATE_LIMIT_MAX: 2, RATE_LIMIT_WINDOW_MS: 60000 })
  const statuses: number[] = []
  let last
  for (let i = 0; i < 3; i++) {
    last = await a.inject({ method: 'POST', url: '/v2/models/aesthetic/infer', payload: inferBody, headers: { 'content-type': 'application/json' } })
    statuses.push(last.statusCode)
  }
  t.same(statuses, [503, 503, 429])
  t.match(last!.json(), { error: /^NIMA_RATE_LIMITED: rate limit of 2 requests/ })
  t.ok(Number(last!.headers['retry-after']) > 0, 'Retry-After')
  for (const url of ['/v2', '/v2/health/live', '/v2/health/ready', '/v2/models/aesthetic', '/v2/models/aesthetic/ready']) {
    for (let i = 0; i < 3; i++) t.not((await a.inject(url)).statusCode, 429, `${url} is not rate limited`)
  }
})

t.test('CORS: a browser may send and read Inference-Header-Content-Length', async (t) => {
  const { app: a } = await app({ CORS_ORIGINS: 'https://curation.example' })
  const preflight = await a.inject({
    method: 'OPTIONS',
    url: '/v2/models/aesthetic/infer',
    headers: { origin: 'https://curation.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'inference-header-content-length' },
  })
  t.equal(preflight.statusCode, 204)
  t.match(preflight.headers['access-control-allow-headers'], /inference-header-content-length/)
  const live = await a.inject({ url: '/v2/health/live', headers: { origin: 'https://curation.example' } })
  t.match(live.headers['access-control-expose-headers'], /inference-header-content-length/)
})
