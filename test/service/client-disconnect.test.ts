import { request as httpRequest, Agent, type ClientRequest, type IncomingMessage } from 'node:http'
import sharp from 'sharp'
import t, { type Test } from 'tap'
import { metricSample } from '../helpers/metrics.js'
import { startTestService, startUpstream } from '../helpers/service.js'

// A client that goes away while its image waits must not cost a decode or an inference.
// The window that keeps images waiting is deterministic: a batch of up to 8 images waits
// BATCH_MAX_WAIT_MS (1 s) for company from its first image, so images sent together sit
// in the queue well past the few milliseconds the test needs to see them there and hang up.
// The score cache off: the same photo is sent again and again, and each must reach the queue.
const svc = await startTestService({ SCORE_CACHE: 'off', BATCH_MAX_SIZE: 8, BATCH_MAX_WAIT_MS: 1000, URL_HEADERS_TIMEOUT_MS: 20_000 })
t.teardown(() => svc.server.shutdown())
const scorer = svc.server.state.scorer!
const image = await sharp({ create: { width: 64, height: 48, channels: 3, background: '#7a8b9c' } }).jpeg().toBuffer()
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

interface Sent {
  req: ClientRequest
  /** Status and body, or the client-side error once the request is destroyed. */
  done: Promise<{ status: number; body: string } | Error>
}

function post(path: string, body: Buffer | string, contentType: string, agent: Agent | false): Sent {
  const url = new URL(svc.url)
  const req = httpRequest({ host: url.hostname, port: url.port, path, method: 'POST', agent, headers: { 'content-type': contentType } })
  const done = new Promise<{ status: number; body: string } | Error>((resolve) => {
    req.on('error', resolve)
    req.on('response', (res: IncomingMessage) => {
      let text = ''
      res.setEncoding('utf8').on('data', (c: string) => (text += c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }))
      res.on('error', resolve)
    })
  })
  req.end(body)
  return { req, done }
}

async function metricsText(): Promise<string> {
  return (await fetch(`${svc.url}/metrics`)).text()
}

const abandoned = async (stage: string) => metricSample(await metricsText(), 'nima_abandoned_total', `stage="${stage}"`)

async function until(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(2)
  }
}

/** No response counted as a server failure: no 5xx status, no error code with a 5xx status. */
function checkNoServerErrors(t: Test, text: string) {
  const bad = text.split('\n').filter((l) => /^nima_http_request_duration_seconds_count\{.*status_code="5\d\d"/.test(l) || /^nima_errors_total\{code="NIMA_(INTERNAL|DEADLINE_EXCEEDED|OVERLOADED)"\}/.test(l))
  t.same(bad, [], 'no 5xx responses and no internal/deadline/overload errors counted')
}

t.test('clients hanging up while their images wait for a batch: dropped from the queue, counted, service fine', async (t) => {
  const keepAlive = new Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => keepAlive.destroy())

  // A normal request on a keep-alive connection completes and is not "abandoned".
  const first = await post('/score', image, 'image/jpeg', keepAlive).done
  t.equal((first as { status: number }).status, 200, 'a plain request succeeds')
  t.equal(await abandoned('queue'), 0, 'a completed request is not counted as abandoned')

  const before = await metricsText()
  const scoredBefore = metricSample(before, 'nima_images_scored_total', 'model="aesthetic"')
  const batchesBefore = metricSample(before, 'nima_batch_size_count', 'model="aesthetic"')
  t.ok(scoredBefore > 0 && batchesBefore > 0, 'the counters checked below exist')

  // Three clients: one reusing the keep-alive socket, two on one-shot connections.
  const sent = [post('/score', image, 'image/jpeg', keepAlive), post('/score', image, 'image/jpeg', false), post('/score', image, 'image/jpeg', false)]
  const queuedAt = Date.now()
  await until('6 images (3 requests × 2 models) to wait in the queues', () => scorer.queueDepth === 6)
  t.ok(Date.now() - queuedAt < 800, 'queued well inside the 1 s batch window')
  t.ok(sent[0]!.req.reusedSocket, 'the first one reuses the keep-alive connection')
  for (const s of sent) s.req.destroy()
  for (const s of sent) t.type(await s.done, Error, 'the client saw its own hang-up')

  await until('the queue to empty', () => scorer.queueDepth === 0)
  await until('3 images counted as abandoned in the queue', async () => (await abandoned('queue')) === 3)
  t.equal(scorer.queueDepth, 0)
  const after = await metricsText()
  t.equal(metricSample(after, 'nima_abandoned_total', 'stage="queue"'), 3, 'one per image, though each waited at two models')
  t.equal(metricSample(after, 'nima_batch_size_count', 'model="aesthetic"'), batchesBefore, 'no batch ran for them')
  t.equal(metricSample(after, 'nima_images_scored_total', 'model="aesthetic"'), scoredBefore, 'none was scored')
  t.equal(metricSample(after, 'nima_ready'), 1, 'still ready')
  t.equal(svc.server.state.inflight, 0, 'nothing left in flight')

  // Later requests, on a fresh keep-alive connection and a one-shot one, succeed.
  const later = await Promise.all([post('/score', image, 'image/jpeg', keepAlive).done, post('/score', image, 'image/jpeg', false).done])
  t.same(later.map((r) => (r as { status: number }).status), [200, 200])
  t.equal((await fetch(`${svc.url}/readyz`)).status, 200)
  checkNoServerErrors(t, await metricsText())
})

t.test('clients hanging up while their URLs are fetched: /score and /rank abort the fetches', async (t) => {
  const open = new Set<IncomingMessage>()
  const seen: string[] = []
  const upstream = await startUpstream((req) => {
    // Never answers: the fetch stays in flight until the service aborts it.
    seen.push(req.url ?? '')
    open.add(req)
    req.socket.on('close', () => open.delete(req))
  })
  t.teardown(upstream.close)

  const score = post('/score', JSON.stringify({ url: `${upstream.url}/one.jpg` }), 'application/json', false)
  await until('the /score fetch to reach the upstream', () => open.size === 1)
  score.req.destroy()
  await until('the /score fetch to be aborted', () => open.size === 0)
  await until('the /score fetch counted', async () => (await abandoned('fetch')) === 1)

  // Five distinct URLs on one host: four fetch (RANK_PER_HOST_CONCURRENCY), one waits for the host.
  const images = [1, 2, 3, 4, 5].map((i) => ({ url: `${upstream.url}/${i}.jpg`, id: String(i) }))
  const rank = post('/rank', JSON.stringify({ images }), 'application/json', false)
  await until('four /rank fetches in flight', () => open.size === 4)
  rank.req.destroy()
  await until('the /rank fetches to be aborted', () => open.size === 0)
  await until('all five /rank URLs counted', async () => (await abandoned('fetch')) === 6)
  t.same(seen.slice(1).sort(), ['/1.jpg', '/2.jpg', '/3.jpg', '/4.jpg'], 'the URL waiting for its host was never fetched')
  t.equal(svc.server.state.inflight, 0)
  checkNoServerErrors(t, await metricsText())
})
