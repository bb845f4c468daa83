import { Writable } from 'node:stream'
import t from 'tap'
import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config/load.js'
import { loggerOptions } from '../../src/http/logger.js'
import { createMetrics } from '../../src/metrics/metrics.js'
import { ServiceState } from '../../src/service-state.js'

t.test('one access line per request, when it ends: method, path without the query, status, time', async (t) => {
  const config = loadConfig({}, { LOG_LEVEL: 'info' })
  const lines: Record<string, any>[] = []
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const l of chunk.toString('utf8').split('\n')) if (l.trim()) lines.push(JSON.parse(l))
      done()
    },
  })
  const app = await buildApp({ config, state: new ServiceState(), metrics: createMetrics(), logger: { ...(loggerOptions(config) as object), stream } })
  t.teardown(() => app.close())
  await app.inject({ url: '/healthz?token=secret' })
  await app.inject({ method: 'POST', url: '/score', payload: { url: 'http://example.com/a.jpg' } })
  const access = lines.filter((l) => l.req || l.res)
  t.same(
    access.map((l) => [l.msg, l.req.method, l.req.path, l.res.statusCode]),
    [
      ['request completed', 'GET', '/healthz', 200],
      ['request completed', 'POST', '/score', 503],
    ],
  )
  for (const l of access) t.ok(typeof l.responseTime === 'number' && l.responseTime >= 0 && typeof l.reqId === 'string')
  t.notOk(JSON.stringify(lines).includes('secret'), 'no query string in the log')
  t.notOk(lines.some((l) => l.msg === 'incoming request'))
})
