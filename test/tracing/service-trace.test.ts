/**
 * Tracing end to end: the built service as the images run it (`node dist/main.cjs`, which
 * starts the SDK before anything else), configured only through OTEL_* variables, exports to
 * a real OTLP/HTTP receiver (test/helpers/otlp-receiver.ts) that decodes what arrives. A
 * /rank of two URLs sent with a traceparent must continue that trace, and the trace must
 * show where the time went: the server span, each fetch (with the upstream's client span),
 * the cache, each decode, each image's batch wait and inference per model.
 */
import { randomBytes } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { startDistService } from '../helpers/dist-service.js'
import { testModelsDir } from '../helpers/models.js'
import { startOtlpReceiver, printTree, type ReceivedSpan } from '../helpers/otlp-receiver.js'
import { sharedImages } from '../helpers/paths.js'
import { startTestService, startUpstream } from '../helpers/service.js'
import { repo } from '../deploy/helpers.js'

const why = !existsSync(repo('dist/main.cjs'))
  ? 'dist/main.cjs is missing (npm run build)'
  : !existsSync(join(sharedImages, 'idealo'))
    ? `no sample photos at ${sharedImages}`
    : undefined

const PHOTOS = ['idealo/aesthetic1.jpg', 'idealo/aesthetic3.jpg']
const MODELS = ['aesthetic', 'technical']
const SERVER = 2
const CLIENT = 3

for (const protocol of ['http/json', 'http/protobuf'] as const) {
  t.test(`a /rank sent with a traceparent continues its trace at an OTLP receiver (${protocol})`, { skip: why ?? false }, async (t) => {
    const receiver = await startOtlpReceiver()
    t.teardown(receiver.close)
    const upstreamTraceparents: string[] = []
    const upstream = await startUpstream((req, res) => {
      upstreamTraceparents.push(String(req.headers['traceparent']))
      res.writeHead(200, { 'content-type': 'image/jpeg' }).end(readFileSync(join(sharedImages, req.url!.split('?')[0]!.slice('/img/'.length))))
    })
    t.teardown(upstream.close)
    const svc = await startDistService(t, {
      MODELS_DIR: await testModelsDir(),
      URL_ALLOWLIST: '127.0.0.1',
      LOG_LEVEL: 'info',
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_EXPORTER_OTLP_PROTOCOL: protocol,
      OTEL_SERVICE_NAME: 'nima-serve-test',
      OTEL_BSP_SCHEDULE_DELAY: '100',
    })

    const traceId = randomBytes(16).toString('hex')
    const callerSpan = randomBytes(8).toString('hex')
    // Signed-URL style credentials in the query string: they must appear in no span.
    const urls = PHOTOS.map((p, i) => `${upstream.url}/img/${p}?X-Signature=SECRET${i}`)
    // The service's own URL may carry one too (the route ignores it).
    const res = await fetch(`${svc.url}/rank?sig=SECRET-server`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', traceparent: `00-${traceId}-${callerSpan}-01` },
      body: JSON.stringify({ images: urls.map((url, i) => ({ url, id: `photo-${i}` })) }),
    })
    t.equal(res.status, 200, svc.log)
    const body = (await res.json()) as { ranked: unknown[] }
    t.equal(body.ranked.length, 2)
    const traceresponse = res.headers.get('traceresponse') ?? ''
    t.match(traceresponse, new RegExp(`^00-${traceId}-[0-9a-f]{16}-01$`), 'traceresponse: the same trace, the server span, sampled')
    const serverSpanId = traceresponse.split('-')[2]

    const spans = (
      await receiver.waitFor((all) => {
        const mine = all.filter((s) => s.traceId === traceId)
        return mine.some((s) => s.kind === SERVER) && MODELS.every((m) => mine.filter((s) => s.name === `inference ${m}`).length === 2)
      })
    ).filter((s) => s.traceId === traceId)
    const tree = printTree(spans, traceId)
    t.comment(`\n${tree}`)
    t.ok(receiver.contentTypes.every((c) => c === (protocol === 'http/json' ? 'application/json' : 'application/x-protobuf')), `exported as ${protocol}`)

    const server = spans.find((s) => s.kind === SERVER)!
    t.equal(server.name, 'POST /rank')
    t.equal(server.parentSpanId, callerSpan, "the server span is the caller's span's child")
    t.equal(server.spanId, serverSpanId, 'traceresponse names the server span')
    t.equal(server.attributes['http.route'], '/rank')
    t.equal(server.attributes['url.path'], '/rank', 'the path without its query string')
    t.equal(server.attributes['http.response.status_code'], 200)
    t.equal(server.resource['service.name'], 'nima-serve-test', 'OTEL_SERVICE_NAME read by the SDK')
    t.equal(server.resource['service.version'], JSON.parse(readFileSync(repo('package.json'), 'utf8')).version)

    // One tree: every span of the trace hangs under the server span.
    const byId = new Map(spans.map((s) => [s.spanId, s]))
    const underServer = (s: ReceivedSpan): boolean => s === server || (byId.has(s.parentSpanId) && underServer(byId.get(s.parentSpanId)!))
    t.same(spans.filter((s) => !underServer(s)).map((s) => s.name), [], 'no span outside the server span')

    const clients = spans.filter((s) => s.kind === CLIENT)
    t.equal(clients.length, 2, 'one client span per upstream fetch')
    t.same(clients.map((s) => s.attributes['url.full']).sort(), PHOTOS.map((p) => `${upstream.url}/img/${p}`).sort(), 'the URL as the logs show it: no query string')
    for (const c of clients) {
      t.equal(c.name, 'GET')
      t.equal(c.attributes['http.response.status_code'], 200)
      t.notOk('url.query' in c.attributes, 'no url.query attribute')
      t.equal(byId.get(c.parentSpanId)?.name, 'image fetch', 'inside its image fetch span')
    }
    t.same(spans.filter((s) => s.name === 'image fetch').map((s) => s.attributes['nima.fetch.outcome']), ['ok', 'ok'])
    t.notOk(JSON.stringify(spans, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v)).includes('SECRET'), 'no span carries the query string')
    const sent = upstreamTraceparents.map((h) => h.split('-'))
    t.ok(sent.length === 2 && sent.every((p) => p[1] === traceId && clients.some((c) => c.spanId === p[2])), 'the upstream got the trace, from the client span')

    const decodes = spans.filter((s) => s.name === 'decode')
    t.equal(decodes.length, 2, 'one decode per image')
    for (const d of decodes) {
      t.equal(d.attributes['nima.image.format'], 'jpeg')
      t.ok(['inline', 'process'].includes(d.attributes['nima.decode.lane'] as string), 'the lane')
      t.equal(d.attributes['nima.image.pixels'], (d.attributes['nima.image.width'] as number) * (d.attributes['nima.image.height'] as number))
      t.ok((d.attributes['nima.image.pixels'] as number) > 0)
    }
    t.ok(spans.some((s) => s.name === 'cache lookup'), 'the score cache was asked')
    for (const model of MODELS) {
      const inference = spans.filter((s) => s.name === `inference ${model}`)
      t.equal(inference.length, 2, `each image's trace shows its ${model} inference`)
      for (const s of inference) {
        t.equal(s.attributes['nima.model.id'], model)
        t.match(s.attributes['nima.model.version'], /^synthetic-/)
        t.equal(s.attributes['nima.model.provider'], 'cpu')
        t.ok((s.attributes['nima.batch.size'] as number) >= 1, 'the batch size')
        t.ok(s.endNs >= s.startNs)
      }
      t.equal(spans.filter((s) => s.name === 'batch wait' && s.attributes['nima.model.id'] === model).length, 2, `each image waited for its ${model} batch`)
    }

    // The access line is written once the response has gone; stdout may arrive a little later.
    const accessLine = () =>
      svc.out
        .split('\n')
        .filter((l) => l.startsWith('{') && l.endsWith('}'))
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .find((l) => l['msg'] === 'request completed' && (l['req'] as { path?: string } | undefined)?.path === '/rank')
    for (let i = 0; i < 50 && accessLine() === undefined; i++) await sleep(100)
    const completed = accessLine()
    t.equal(completed?.['trace_id'], traceId, `the access log line carries the trace id\n${svc.out}`)
    t.equal(completed?.['span_id'], serverSpanId, 'and the server span id')

    // The caller decided not to sample: the trace goes on unrecorded, and the answer says so.
    const unsampled = randomBytes(16).toString('hex')
    const quiet = await fetch(`${svc.url}/rank`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', traceparent: `00-${unsampled}-${callerSpan}-00` },
      body: JSON.stringify({ images: [{ url: urls[0] }] }),
    })
    t.equal(quiet.status, 200)
    t.match(quiet.headers.get('traceresponse'), new RegExp(`^00-${unsampled}-[0-9a-f]{16}-00$`), 'traceresponse: the same trace, not sampled')
    await quiet.arrayBuffer()
    await sleep(1000)
    t.equal(receiver.spans.filter((s) => s.traceId === unsampled).length, 0, 'nothing exported for it')
  })
}

t.test('a collector that is down: requests are served, and a warning says where the spans did not go', { skip: why ?? false }, async (t) => {
  const gone = await startOtlpReceiver()
  await gone.close()
  const svc = await startDistService(t, {
    MODELS_DIR: await testModelsDir(),
    LOG_LEVEL: 'warn',
    OTEL_EXPORTER_OTLP_ENDPOINT: gone.url,
    OTEL_EXPORTER_OTLP_TIMEOUT: '500',
    OTEL_BSP_SCHEDULE_DELAY: '100',
  })
  const res = await fetch(`${svc.url}/models`)
  t.equal(res.status, 200)
  t.ok(res.headers.get('traceresponse'), 'traced all the same')
  let line: Record<string, unknown> | undefined
  for (let i = 0; i < 100 && line === undefined; i++) {
    line = svc.out
      .split('\n')
      .filter((l) => l.includes('"component":"opentelemetry"'))
      .map((l) => JSON.parse(l) as Record<string, unknown>)[0]
    if (line === undefined) await sleep(100)
  }
  t.match(line?.['msg'], /^tracing: .*ECONNREFUSED/, `one warning line (stdout: ${svc.out.slice(-500)})`)
})

t.test('tracing off (no OTEL_* set): no traceresponse header, and requests work as ever', { skip: why ?? false }, async (t) => {
  const svc = await startTestService()
  t.teardown(() => svc.server.shutdown())
  const photo = readFileSync(join(sharedImages, PHOTOS[0]!))
  const res = await fetch(`${svc.url}/score`, {
    method: 'POST',
    headers: { 'content-type': 'image/jpeg', traceparent: `00-${randomBytes(16).toString('hex')}-${randomBytes(8).toString('hex')}-01` },
    body: photo,
  })
  t.equal(res.status, 200)
  t.equal(res.headers.get('traceresponse'), null)
})
