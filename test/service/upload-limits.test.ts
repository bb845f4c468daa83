import sharp from 'sharp'
import t from 'tap'
import { metricSample } from '../helpers/metrics.js'
import { rawExchange, type RawExchange } from '../helpers/raw-http.js'
import { startTestService } from '../helpers/service.js'

// Uploads that stall are answered 408 and let go of what they buffered; uploads past the
// budget are refused up front; clients hanging up mid-upload are abandoned, not errors.
const KiB = 1024
const BODY_TIMEOUT_MS = 800
const svc = await startTestService({ BODY_LIMIT_BYTES: 1024 * KiB, UPLOAD_BUDGET_BYTES: 2560 * KiB, RANK_UPLOAD_MAX_BYTES: 2048 * KiB, BODY_TIMEOUT_MS })
t.teardown(() => svc.server.shutdown())
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))
const metrics = async () => (await fetch(`${svc.url}/metrics`)).text()
const reserved = async () => metricSample(await metrics(), 'nima_upload_reserved_bytes')

async function until(what: string, check: () => Promise<boolean>, timeoutMs = 3000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await sleep(10)
  }
}

type Kind = 'raw' | 'multipart' | 'json'
/** Headers declaring `declared` bytes and the first `sent` of them. */
function partialUpload(kind: Kind, declared: number, sent: number): string {
  const uploads: Record<Kind, [string, string, string]> = {
    raw: ['/score', 'image/jpeg', '\xff\xd8\xff\xe0'],
    multipart: ['/score', 'multipart/form-data; boundary=b', '--b\r\nContent-Disposition: form-data; name="image"; filename="a.jpg"\r\nContent-Type: image/jpeg\r\n\r\n\xff\xd8\xff\xe0'],
    json: ['/rank', 'application/json', '{"images": ['],
  }
  const [path, type, start] = uploads[kind]
  return `POST ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: ${type}\r\nContent-Length: ${declared}\r\n\r\n${start.padEnd(sent, ' ')}`
}

t.test('stalled uploads of every body kind get 408 JSON within BODY_TIMEOUT_MS and give back their reservation', async (t) => {
  const kinds: Kind[] = ['raw', 'raw', 'multipart', 'json']
  const before = await metrics()
  const stalled = kinds.map((k) => rawExchange(svc.url, partialUpload(k, 512 * KiB, 300 * KiB)))
  await until('the four reservations', async () => (await reserved()) === 4 * 512 * KiB)
  t.pass('while they stall, the gauge shows what they reserved')
  const answers = await Promise.all(stalled.map((s) => s.answer))
  for (const [i, a] of answers.entries()) {
    t.equal(a.status, 408, `${kinds[i]}: 408`)
    t.equal(JSON.parse(a.body || '{}').error?.code, 'NIMA_REQUEST_TIMEOUT', `${kinds[i]}: code`)
    t.ok(a.ms >= BODY_TIMEOUT_MS - 50 && a.ms <= BODY_TIMEOUT_MS + 1000, `${kinds[i]}: answered after ${a.ms.toFixed(0)} ms (BODY_TIMEOUT_MS ${BODY_TIMEOUT_MS})`)
  }
  await until('the reservations to go back to 0', async () => (await reserved()) === 0)
  t.pass('nothing reserved once they are answered')
  const after = await metrics()
  const delta = (...labels: string[]) => metricSample(after, labels[0]!, ...labels.slice(1)) - metricSample(before, labels[0]!, ...labels.slice(1))
  t.equal(delta('nima_errors_total', 'code="NIMA_REQUEST_TIMEOUT"'), 4, 'four timeouts counted')
  t.equal(delta('nima_errors_total', 'code="NIMA_INVALID_REQUEST"'), 0, 'no invalid request counted for them')
  t.equal(delta('nima_abandoned_total', 'stage="upload"'), 0, 'a timeout is not a client hanging up')
})

t.test('uploads past UPLOAD_BUDGET_BYTES get 503 NIMA_OVERLOADED with Retry-After before their body is read', async (t) => {
  const holders: RawExchange[] = [rawExchange(svc.url, partialUpload('raw', 1024 * KiB, 10 * KiB)), rawExchange(svc.url, partialUpload('multipart', 1024 * KiB, 10 * KiB))]
  await until('two reservations of 1 MiB', async () => (await reserved()) === 2048 * KiB)
  for (const [name, send] of [
    ['declared 1 MiB', partialUpload('raw', 1024 * KiB, 10 * KiB)],
    ['chunked (counts as BODY_LIMIT_BYTES)', 'POST /score HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/jpeg\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n'],
    ['declared 1 MiB, JSON', partialUpload('json', 1024 * KiB, 10 * KiB)],
  ] as const) {
    const a = await rawExchange(svc.url, send).answer
    t.equal(a.status, 503, `${name}: 503`)
    t.equal(JSON.parse(a.body || '{}').error?.code, 'NIMA_OVERLOADED', `${name}: code`)
    t.equal(a.headers['retry-after'], '1', `${name}: Retry-After`)
    t.ok(a.ms < BODY_TIMEOUT_MS / 2, `${name}: refused at once (${a.ms.toFixed(0)} ms)`)
  }
  const waiting = await rawExchange(svc.url, 'POST /score HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/jpeg\r\nContent-Length: 1048576\r\nExpect: 100-continue\r\n\r\n').answer
  t.equal(waiting.status, 503, 'Expect: 100-continue: refused from the headers alone')
  t.same(waiting.interim, [], 'and never told to send its body')
  const small = await sharp({ create: { width: 32, height: 32, channels: 3, background: '#336699' } }).jpeg().toBuffer()
  const fits = await fetch(`${svc.url}/score`, { method: 'POST', headers: { 'content-type': 'image/jpeg' }, body: small })
  t.equal(fits.status, 200, 'a small upload that fits in what is left is served')
  for (const h of holders) t.equal((await h.answer).status, 408, 'the holders time out')
  await until('the reservations to go back to 0', async () => (await reserved()) === 0)
  const later = await fetch(`${svc.url}/score`, { method: 'POST', headers: { 'content-type': 'image/jpeg' }, body: new Uint8Array(1000 * KiB).fill(7) })
  t.equal(later.status, 415, 'once they are gone, a 1 MiB upload is read again (and refused for what it is)')
  const asks = rawExchange(svc.url, 'POST /score HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/jpeg\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n')
  await sleep(200)
  asks.socket.write('abcd')
  const asked = await asks.answer
  t.same([asked.interim, asked.status], [[100], 415], 'with room, 100 Continue, then the body is read')
})

t.test('clients hanging up mid-upload are counted as abandoned uploads, not as errors', async (t) => {
  const before = await metrics()
  const ways: [Kind, 'close' | 'reset'][] = [['raw', 'close'], ['raw', 'reset'], ['multipart', 'close'], ['json', 'close']]
  for (const [kind, how] of ways) {
    const { socket } = rawExchange(svc.url, partialUpload(kind, 512 * KiB, 100 * KiB))
    await until(`${kind} upload under way`, async () => (await reserved()) > 0)
    if (how === 'reset') socket.resetAndDestroy()
    else socket.destroy()
    await until(`${kind} reservation back`, async () => (await reserved()) === 0)
  }
  const abandonedUploads = async () => metricSample(await metrics(), 'nima_abandoned_total', 'stage="upload"') - metricSample(before, 'nima_abandoned_total', 'stage="upload"')
  await until('four abandoned uploads', async () => (await abandonedUploads()) === ways.length)
  const after = await metrics()
  t.equal(await abandonedUploads(), ways.length, 'each hang-up counted once, under stage "upload"')
  // The 499 goes to a closed connection: fastify never sees it finish, so no duration sample at all.
  const answered4xx = (text: string) => metricSample(text, 'nima_http_request_duration_seconds_count', 'status_code="4')
  t.equal(answered4xx(after) - answered4xx(before), 0, 'none answered with a 4xx status')
  const errors = (text: string) => metricSample(text, 'nima_errors_total')
  t.equal(errors(after) - errors(before), 0, 'no error counted')
})
