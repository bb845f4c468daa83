import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config/load.js'
import { createImageSource } from '../../src/fetching/image-source.js'
import { createMetrics } from '../../src/metrics/metrics.js'
import { ServiceState } from '../../src/service-state.js'
import { startTestService } from '../helpers/service.js'
import { sharedImages } from '../helpers/paths.js'

t.test('healthz, readyz, models and metrics on the real service', async (t) => {
  const svc = await startTestService()
  t.teardown(() => svc.server.shutdown())
  t.same(await (await fetch(svc.url + '/healthz')).json(), { status: 'ok' })
  const ready = (await (await fetch(svc.url + '/readyz')).json()) as any
  t.equal(ready.status, 'ready')
  const models = (await (await fetch(svc.url + '/models')).json()) as any
  t.same(models.models.map((m: any) => [m.id, m.synthetic, m.provider, m.default]), [['aesthetic', true, 'cpu', true], ['technical', true, 'cpu', true]])
  t.equal(models.models[0].provenance.kind, 'synthetic')
  t.equal(models.models[0].input.resize, 'nearest')
  await fetch(svc.url + '/score', { method: 'POST', body: 'x', headers: { 'content-type': 'text/plain' } })
  const ok = await fetch(svc.url + '/score', { method: 'POST', body: readFileSync(join(sharedImages, 'idealo/42039.jpg')), headers: { 'content-type': 'image/jpeg' } })
  t.equal(ok.status, 200)
  const res = await fetch(svc.url + '/metrics')
  t.match(res.headers.get('content-type'), /text\/plain/)
  const text = await res.text()
  for (const name of ['nima_http_request_duration_seconds_bucket', 'nima_inference_duration_seconds_bucket', 'nima_batch_size_bucket', 'nima_queue_wait_seconds_bucket', 'nima_images_scored_total', 'nima_errors_total', 'nima_inflight_requests', 'nima_queue_depth', 'nima_ready 1', 'nima_process_cpu_seconds_total', 'nima_fetch_duration_seconds', 'nima_fetch_bytes', 'nima_inflight_images{model="aesthetic"} 0', 'nima_decode_queue_depth 0', 'nima_decodes_running 0', 'nima_decode_memory_reserved_bytes 0', 'nima_decode_timeouts_total 0']) {
    t.ok(text.includes(name), `exports ${name}`)
  }
  t.match(text, /nima_model_info\{model="aesthetic",version="synthetic-s1007",synthetic="true",provider="cpu",task="aesthetic"\} 1/)
  t.match(text, /nima_errors_total\{code="NIMA_UNSUPPORTED_MEDIA_TYPE"\} 1/)
  t.match(text, /nima_http_request_duration_seconds_count\{route="\/score",method="POST",status_code="415"\} 1/)
  t.match(text, /nima_inference_duration_seconds_count\{model="aesthetic",version="synthetic-s1007",synthetic="true",provider="cpu"\} 1\n/, 'one batch run (warm-up is not counted)')
  t.match(text, /nima_images_scored_total\{model="technical",version="synthetic-s1011",synthetic="true"\} 1\n/)
})

t.test('before models are loaded: alive, not ready, scoring refused with 503', async (t) => {
  const config = loadConfig({}, { LOG_LEVEL: 'silent' })
  const metrics = createMetrics()
  const state = new ServiceState()
  const app = await buildApp({ config, state, metrics })
  t.teardown(() => app.close())
  t.equal((await app.inject({ url: '/healthz' })).statusCode, 200)
  const r = await app.inject({ url: '/readyz' })
  t.equal(r.statusCode, 503)
  t.equal(r.json().error.code, 'NIMA_NOT_READY')
  t.equal(r.headers['retry-after'], '1')
  const s = await app.inject({ method: 'POST', url: '/score', payload: { url: 'http://example.com/a.jpg' } })
  t.equal(s.statusCode, 503)
  t.equal((await app.inject({ url: '/models' })).statusCode, 503)
})

t.test('an unexpected failure is a 500 with no internals in the body', async (t) => {
  const svc = await startTestService()
  t.teardown(() => svc.server.shutdown())
  const app = await buildApp({
    config: svc.config,
    state: svc.server.state,
    metrics: createMetrics(),
    images: createImageSource(svc.config, {
      fetcher: {
        fetch: async () => {
          throw new TypeError('secret internal detail at /srv/x.js:1')
        },
        revalidate: async () => {
          throw new TypeError('secret internal detail at /srv/x.js:1')
        },
        close: async () => {},
      },
    }),
  })
  t.teardown(() => app.close())
  const r = await app.inject({ method: 'POST', url: '/score', payload: { url: 'http://example.com/a.jpg' } })
  t.equal(r.statusCode, 500)
  t.same(Object.keys(r.json().error).sort(), ['code', 'message', 'requestId'])
  t.equal(r.json().error.code, 'NIMA_INTERNAL')
  t.notMatch(r.body, /secret/)
})
