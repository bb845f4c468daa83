import { request as httpRequest, type IncomingMessage } from 'node:http'
import { join } from 'node:path'
import t from 'tap'
import { toNimaError } from '../../src/errors.js'
import { metricSample } from '../helpers/metrics.js'
import { startTestService, startUpstream } from '../helpers/service.js'

// POST /labels/images decodes and fetches like /score: it lives under the same request
// lifecycle. An upstream that never answers holds the request inside its fetch, so the
// deadline, the in-flight count and a client hanging up can each be watched on real sockets.
const svc = await startTestService({ LABELS_DB: join(t.testdir(), 'labels.sqlite'), REQUEST_DEADLINE_MS: 600, URL_HEADERS_TIMEOUT_MS: 20_000 })
t.teardown(() => svc.server.shutdown())
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

const open = new Set<IncomingMessage>()
const upstream = await startUpstream((req) => {
  open.add(req)
  req.socket.on('close', () => open.delete(req))
})
t.teardown(upstream.close)

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(2)
  }
}
const metrics = async () => (await fetch(`${svc.url}/metrics`)).text()

t.test('a fetch past the deadline: 503 NIMA_DEADLINE_EXCEEDED with retry-after, counted in flight meanwhile', async (t) => {
  const started = Date.now()
  const pending = fetch(`${svc.url}/labels/images`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ url: `${upstream.url}/slow.jpg` }) })
  await until('the fetch to reach the upstream', () => open.size === 1)
  t.equal(svc.server.state.inflight, 1, 'the request is counted in flight while it fetches')
  const res = await pending
  const body = (await res.json()) as { error: { code: string } }
  t.equal(res.status, 503)
  t.equal(body.error.code, 'NIMA_DEADLINE_EXCEEDED')
  t.equal(res.headers.get('retry-after'), '1')
  t.ok(Date.now() - started >= 550, 'answered at the deadline, not before')
  await until('the upstream fetch to be dropped', () => open.size === 0)
  t.equal(svc.server.state.inflight, 0, 'nothing left in flight')
  const text = await metrics()
  t.equal(metricSample(text, 'nima_errors_total', 'code="NIMA_DEADLINE_EXCEEDED"'), 1)
  t.equal(metricSample(text, 'nima_errors_total', 'code="NIMA_INTERNAL"'), 0, 'no 500')
})

t.test('a client that hangs up during the fetch: the fetch is aborted and counted as abandoned, nothing stored', async (t) => {
  const url = new URL(svc.url)
  const req = httpRequest({ host: url.hostname, port: url.port, path: '/labels/images', method: 'POST', headers: { 'content-type': 'application/json' } })
  const gone = new Promise((resolve) => req.on('error', resolve))
  req.end(JSON.stringify({ url: `${upstream.url}/never.jpg` }))
  await until('the fetch to reach the upstream', () => open.size === 1)
  t.equal(svc.server.state.inflight, 1)
  req.destroy()
  await gone
  // Well inside the 600 ms deadline: the abort comes from the client leaving.
  const leftAt = Date.now()
  await until('the upstream fetch to be aborted', () => open.size === 0)
  t.ok(Date.now() - leftAt < 500, 'aborted when the client left, not at the deadline')
  await until('the abandoned fetch to be counted', async () => metricSample(await metrics(), 'nima_abandoned_total', 'stage="fetch"') === 1)
  t.equal(svc.server.state.inflight, 0)
  const list = await (await fetch(`${svc.url}/labels/images`)).json()
  t.same(list, { images: [], next: null }, 'nothing was stored')
  const text = await metrics()
  t.equal(metricSample(text, 'nima_errors_total', 'code="NIMA_INTERNAL"'), 0)
  t.equal(metricSample(text, 'nima_http_request_duration_seconds_count', 'status_code="500"'), 0, 'no 500 for the client that left')
})

t.test('while the service drains, label uploads get 503 NIMA_NOT_READY like scoring', async (t) => {
  // A separate service: draining is one-way.
  const other = await startTestService({ LABELS_DB: join(t.testdir(), 'drain.sqlite') })
  other.server.state.startDraining()
  const res = await fetch(`${other.url}/labels/images`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ url: `${upstream.url}/x.jpg` }) })
  t.equal(res.status, 503)
  t.match(await res.json(), { error: { code: 'NIMA_NOT_READY' } })
  t.equal(open.size, 0, 'nothing fetched')
  await other.server.shutdown()
})

t.test('a time limit that reaches the error mapping unwrapped is a deadline, not a 500', async (t) => {
  const signal = AbortSignal.timeout(1)
  await new Promise((r) => signal.addEventListener('abort', r, { once: true }))
  const mapped = toNimaError(signal.reason)
  t.equal(mapped.code, 'NIMA_DEADLINE_EXCEEDED')
  t.equal(mapped.statusCode, 503)
  const wrapped = Object.assign(new DOMException('aborted', 'AbortError'), { cause: signal.reason })
  t.equal(toNimaError(wrapped).code, 'NIMA_DEADLINE_EXCEEDED', 'an abort whose cause is a timeout')
  t.equal(toNimaError(new DOMException('aborted', 'AbortError')).code, 'NIMA_INTERNAL', 'an abort without a timeout cause is not a deadline')
})
