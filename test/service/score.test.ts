import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { samplePhotos, sharedImages } from '../helpers/paths.js'
import { startTestService, startUpstream } from '../helpers/service.js'

const photos = samplePhotos()
const jpeg = join(sharedImages, 'idealo/42039.jpg')
const png = join(sharedImages, 'natural/coffee.png')

const svc = await startTestService({ BODY_LIMIT_BYTES: 1_000_000, URL_HEADERS_TIMEOUT_MS: 400 })
t.teardown(() => svc.server.shutdown())
const upstream = await startUpstream((req, res) => {
  if (req.url === '/slow') return // never answers: headers timeout
  if (req.url?.startsWith('/img/')) {
    try {
      const body = readFileSync(join(sharedImages, req.url.slice(5).split('?')[0]!))
      res.writeHead(200, { 'content-type': 'application/octet-stream' }).end(body)
    } catch {
      res.writeHead(404).end()
    }
    return
  }
  res.writeHead(404).end()
})
t.teardown(upstream.close)

async function post(path: string, body: RequestInit['body'], headers: Record<string, string> = {}) {
  const res = await fetch(svc.url + path, { method: 'POST', body, headers })
  return { status: res.status, headers: res.headers, json: (await res.json()) as any }
}

function checkScore(t: Test, body: any, models = ['aesthetic', 'technical']) {
  t.same(Object.keys(body.scores).sort(), [...models].sort())
  for (const id of models) {
    const s = body.scores[id]
    t.equal(s.distribution.length, 10)
    t.ok(Math.abs(s.distribution.reduce((a: number, b: number) => a + b, 0) - 1) < 1e-4, `${id} distribution sums to 1`)
    const mean = s.distribution.reduce((a: number, p: number, i: number) => a + p * (i + 1), 0)
    t.ok(Math.abs(mean - s.mean) < 1e-9, `${id} mean = Σ i·p_i`)
    t.ok(s.std > 0 && s.mean >= 1 && s.mean <= 10)
    t.equal(body.models[id].synthetic, true, `${id} reported as synthetic`)
    t.equal(body.models[id].provider, 'cpu')
  }
  t.match(body.image.id, /^[0-9a-f]{64}$/)
  t.ok(body.timings.totalMs >= body.timings.inferenceMs)
}

t.test('multipart upload of every sample photo', async (t) => {
  for (const path of photos) {
    const form = new FormData()
    form.append('image', new Blob([readFileSync(path)]), 'photo')
    const r = await post('/score', form)
    t.equal(r.status, 200, path)
    checkScore(t, r.json)
    const { aesthetic, technical } = r.json.scores
    t.ok(Math.abs(r.json.combined.score - (0.6 * aesthetic.mean + 0.4 * technical.mean)) < 1e-9, 'combined = 0.6 a + 0.4 t')
  }
})

t.test('raw body, models filter, and x-request-id honoured', async (t) => {
  const r = await post('/score?models=technical', readFileSync(png), { 'content-type': 'image/png', 'x-request-id': 'abc-123' })
  t.equal(r.status, 200)
  t.equal(r.headers.get('x-request-id'), 'abc-123')
  t.equal(r.json.requestId, 'abc-123')
  t.same(Object.keys(r.json.scores), ['technical'])
  t.same(r.json.combined, { score: r.json.scores.technical.mean, weights: { technical: 1 } }, 'one model: its mean, its share 1 (not the configured 0.4)')
  t.same(r.json.image, { id: r.json.image.id, width: 600, height: 400, format: 'png', bytes: readFileSync(png).length, preprocess: 'exact', phash: r.json.image.phash, phashCrops: r.json.image.phashCrops })
  t.match(r.json.image.phash, /^[0-9a-f]{16}$/, 'the perceptual hash, 16 hex digits')
  t.ok(r.json.image.phashCrops.length === 4 && r.json.image.phashCrops.every((h: string) => /^[0-9a-f]{16}$/.test(h)), 'four corner-crop hashes')
})

t.test('a wrong Content-Type does not matter: format comes from magic bytes', async (t) => {
  const r = await post('/score', readFileSync(jpeg), { 'content-type': 'image/png' })
  t.equal(r.status, 200)
  t.equal(r.json.image.format, 'jpeg')
})

t.test('same bytes give the same scores by upload and by URL', async (t) => {
  const a = await post('/score', readFileSync(jpeg), { 'content-type': 'image/jpeg' })
  const b = await post('/score', JSON.stringify({ url: `${upstream.url}/img/idealo/42039.jpg?sig=secret` }), { 'content-type': 'application/json' })
  t.equal(b.status, 200)
  t.same(b.json.scores, a.json.scores)
  t.ok(b.json.timings.fetchMs > 0)
})

t.test('request weights change the combined score', async (t) => {
  const r = await post('/score', JSON.stringify({ url: `${upstream.url}/img/idealo/42040.jpg`, weights: { technical: 1, aesthetic: 0 } }), { 'content-type': 'application/json' })
  t.equal(r.status, 200)
  t.equal(r.json.combined.score, r.json.scores.technical.mean)
})

const errorCases: [string, () => Promise<{ status: number; json: any }>, number, string][] = [
  ['invalid JSON', () => post('/score', '{"url":', { 'content-type': 'application/json' }), 400, 'NIMA_INVALID_REQUEST'],
  ['JSON with a wrong type', () => post('/score', JSON.stringify({ url: 42 }), { 'content-type': 'application/json' }), 400, 'NIMA_INVALID_REQUEST'],
  ['JSON with an unknown field', () => post('/score', JSON.stringify({ url: 'http://x/', extra: 1 }), { 'content-type': 'application/json' }), 400, 'NIMA_INVALID_REQUEST'],
  ['unknown model', () => post('/score?models=beauty', readFileSync(jpeg), { 'content-type': 'image/jpeg' }), 400, 'NIMA_UNKNOWN_MODEL'],
  ['empty body', () => post('/score', new Uint8Array(0), { 'content-type': 'image/jpeg' }), 400, 'NIMA_MISSING_IMAGE'],
  ['multipart without an image field', () => { const f = new FormData(); f.append('note', 'hi'); return post('/score', f) }, 400, 'NIMA_MISSING_IMAGE'],
  ['multipart with a file under another name', () => { const f = new FormData(); f.append('photo', new Blob([readFileSync(jpeg)]), 'x.jpg'); return post('/score', f) }, 400, 'NIMA_INVALID_REQUEST'],
  ['non-http URL', () => post('/score', JSON.stringify({ url: 'file:///etc/passwd' }), { 'content-type': 'application/json' }), 400, 'NIMA_URL_INVALID'],
  ['URL to a private address', () => post('/score', JSON.stringify({ url: 'http://10.1.2.3/x.jpg' }), { 'content-type': 'application/json' }), 400, 'NIMA_URL_BLOCKED'],
  ['body over BODY_LIMIT_BYTES', () => post('/score', new Uint8Array(1_500_000).fill(1), { 'content-type': 'image/jpeg' }), 413, 'NIMA_PAYLOAD_TOO_LARGE'],
  ['multipart file over BODY_LIMIT_BYTES', () => { const f = new FormData(); f.append('image', new Blob([new Uint8Array(1_500_000)]), 'x.jpg'); return post('/score', f) }, 413, 'NIMA_PAYLOAD_TOO_LARGE'],
  ['text/plain body', () => post('/score', 'hello', { 'content-type': 'text/plain' }), 415, 'NIMA_UNSUPPORTED_MEDIA_TYPE'],
  ['random bytes', () => post('/score', new Uint8Array(5000).map((_, i) => (i * 7919) % 251), { 'content-type': 'image/jpeg' }), 415, 'NIMA_UNSUPPORTED_MEDIA_TYPE'],
  ['BMP (libvips cannot read it)', () => post('/score', Buffer.concat([Buffer.from('BM'), Buffer.alloc(100)]), { 'content-type': 'application/octet-stream' }), 415, 'NIMA_UNSUPPORTED_MEDIA_TYPE'],
  ['SVG (refused: external references)', () => post('/score', '<svg xmlns="http://www.w3.org/2000/svg"/>', { 'content-type': 'application/octet-stream' }), 415, 'NIMA_UNSUPPORTED_MEDIA_TYPE'],
  ['truncated JPEG', () => post('/score', readFileSync(join(sharedImages, 'natural/truncated-broken.jpg')), { 'content-type': 'image/jpeg' }), 422, 'NIMA_UNDECODABLE_IMAGE'],
  ['upstream 404', () => post('/score', JSON.stringify({ url: `${upstream.url}/img/missing.jpg` }), { 'content-type': 'application/json' }), 502, 'NIMA_UPSTREAM_FAILED'],
  ['upstream never answers', () => post('/score', JSON.stringify({ url: `${upstream.url}/slow` }), { 'content-type': 'application/json' }), 504, 'NIMA_UPSTREAM_TIMEOUT'],
  ['unknown route', async () => { const r = await fetch(svc.url + '/nope'); return { status: r.status, json: await r.json() } }, 404, 'NIMA_NOT_FOUND'],
]

for (const [name, send, status, code] of errorCases) {
  t.test(`error: ${name} → ${status} ${code}`, async (t) => {
    const r = await send()
    t.equal(r.status, status)
    t.equal(r.json.error?.code, code, r.json.error?.message)
    t.type(r.json.error?.message, 'string')
    t.type(r.json.error?.requestId, 'string')
    t.notMatch(JSON.stringify(r.json), /at .*\.(ts|js):\d+/, 'no stack trace')
  })
}

t.test('the service is still healthy after all of that', async (t) => {
  const r = await fetch(svc.url + '/readyz')
  t.equal(r.status, 200)
})
