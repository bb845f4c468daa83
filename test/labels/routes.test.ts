import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { parseExport } from '../../src/labels/export.js'
import { sharedImages } from '../helpers/paths.js'
import { startUpstream } from '../helpers/service.js'
import { startLabelApp } from './app.js'
import { tinyPng } from './helpers.js'

const dir = t.testdir()
const svc = await startLabelApp(join(dir, 'labels.sqlite'), { BODY_LIMIT_BYTES: 2_000_000 })
t.teardown(svc.close)

const jpegPath = join(sharedImages, 'idealo/42039.jpg')
const jpeg = readFileSync(jpegPath)
let upstreamHits = 0
const upstream = await startUpstream((req, res) => {
  if (req.url === '/photo.jpg') {
    upstreamHits++
    res.writeHead(200, { 'content-type': 'image/jpeg' }).end(jpeg)
  } else res.writeHead(404).end()
})
t.teardown(upstream.close)

async function call(method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
  const init: RequestInit = { method, headers: { ...headers } }
  if (body instanceof Uint8Array || body instanceof FormData) init.body = body as NonNullable<RequestInit['body']>
  else if (body !== undefined) {
    init.body = JSON.stringify(body)
    ;(init.headers as Record<string, string>)['content-type'] = 'application/json'
  }
  const res = await fetch(svc.url + path, init)
  const text = await res.text()
  let json: any
  try {
    json = JSON.parse(text)
  } catch {
    json = undefined
  }
  return { status: res.status, headers: res.headers, text, json }
}

const pngA = await tinyPng(1)
const pngB = await tinyPng(2)

t.test('POST /labels/images: raw, multipart with group, URL fetched once', async (t) => {
  const raw = await call('POST', '/labels/images?group=hotel-a', pngA.bytes, { 'content-type': 'image/png' })
  t.equal(raw.status, 201)
  t.match(raw.json, { created: true, image: { id: pngA.id, format: 'png', width: 32, height: 32, group: 'hotel-a', ratings: 0 } })
  const again = await call('POST', '/labels/images', pngA.bytes, { 'content-type': 'application/octet-stream' })
  t.equal(again.status, 200)
  t.equal(again.json.created, false)

  const form = new FormData()
  form.set('group', 'hotel-b')
  form.set('image', new Blob([pngB.bytes]), 'b.png')
  const multi = await call('POST', '/labels/images', form)
  t.equal(multi.status, 201)
  t.match(multi.json.image, { id: pngB.id, group: 'hotel-b' })

  const byUrl = await call('POST', '/labels/images', { url: `${upstream.url}/photo.jpg`, group: 'hotel-c' })
  t.equal(byUrl.status, 201)
  t.match(byUrl.json.image, { format: 'jpeg', sourceUrl: `${upstream.url}/photo.jpg`, group: 'hotel-c' })
  const byUrlAgain = await call('POST', '/labels/images', { url: `${upstream.url}/photo.jpg` })
  t.equal(byUrlAgain.status, 200)
  t.equal(byUrlAgain.json.image.id, byUrl.json.image.id)
  t.equal(upstreamHits, 1, 'the URL was fetched once')
})

t.test('POST /labels/images: refusals carry stable codes', async (t) => {
  const cases: [string, unknown, Record<string, string>, number, string][] = [
    ['text', Buffer.from('hello'), { 'content-type': 'text/plain' }, 415, 'NIMA_UNSUPPORTED_MEDIA_TYPE'],
    ['not an image', Buffer.from('hello there, not an image'), { 'content-type': 'image/png' }, 415, 'NIMA_UNSUPPORTED_MEDIA_TYPE'],
    ['truncated', jpeg.subarray(0, 2000), { 'content-type': 'image/jpeg' }, 422, 'NIMA_UNDECODABLE_IMAGE'],
    ['no url', {}, {}, 400, 'NIMA_INVALID_REQUEST'],
    ['empty body', Buffer.alloc(0), { 'content-type': 'image/png' }, 400, 'NIMA_MISSING_IMAGE'],
    ['extra field', { url: 'http://x.example/a.jpg', rating: 3 }, {}, 400, 'NIMA_INVALID_REQUEST'],
    ['metadata address', { url: 'http://169.254.169.254/latest' }, {}, 400, 'NIMA_URL_BLOCKED'],
    ['bad group', pngA.bytes, { 'content-type': 'image/png' }, 400, 'NIMA_INVALID_REQUEST'],
    ['too large', Buffer.alloc(2_100_000, 1), { 'content-type': 'image/jpeg' }, 413, 'NIMA_PAYLOAD_TOO_LARGE'],
  ]
  for (const [what, body, headers, status, code] of cases) {
    const path = what === 'bad group' ? '/labels/images?group=a%2Fb' : '/labels/images'
    const res = await call('POST', path, body, headers)
    t.equal(res.status, status, what)
    t.equal(res.json?.error?.code, code, what)
  }
})

t.test('GET /labels/next, the image file and metadata', async (t) => {
  const next = await call('GET', '/labels/next?rater=ana')
  t.equal(next.status, 200)
  t.equal(next.json.remaining, 3)
  t.equal(next.json.image.id, pngA.id, 'oldest unrated first')
  const skipped = await call('GET', `/labels/next?rater=ana&skip=${pngA.id}`)
  t.equal(skipped.json.image.id, pngB.id)
  const file = await fetch(`${svc.url}/labels/images/${pngA.id}/file`)
  t.equal(file.headers.get('content-type'), 'image/png')
  t.same(Buffer.from(await file.arrayBuffer()), pngA.bytes)
  const meta = await call('GET', `/labels/images/${pngB.id}`)
  t.equal(meta.json.group, 'hotel-b')
  const missing = await call('GET', `/labels/images/${'0'.repeat(64)}/file`)
  t.equal(missing.status, 404)
  t.equal(missing.json.error.code, 'NIMA_NOT_FOUND')
  t.equal((await call('GET', '/labels/next')).json.error.code, 'NIMA_INVALID_REQUEST', 'rater is required')
  t.equal((await call('GET', '/labels/next?rater=a%00b')).status, 400)
  const list = await call('GET', '/labels/images?limit=2')
  t.equal(list.json.images.length, 2)
  t.equal((await call('GET', `/labels/images?limit=2&after=${list.json.next}`)).json.images.length, 1)
})

t.test('ratings: create, replace, validate, list, delete', async (t) => {
  const created = await call('POST', '/labels/ratings', { imageId: pngA.id, rater: 'ana', rating: 7 })
  t.equal(created.status, 201)
  t.match(created.json, { created: true, rating: { imageId: pngA.id, rater: 'ana', rating: 7, histogram: null } })
  const replaced = await call('POST', '/labels/ratings', { imageId: pngA.id, rater: 'ana', rating: 8 })
  t.equal(replaced.status, 200)
  t.equal(replaced.json.rating.id, created.json.rating.id)
  const hist = await call('POST', '/labels/ratings', { imageId: pngA.id, rater: 'ava', histogram: [0, 0, 1, 2, 3, 4, 3, 2, 1, 0] })
  t.equal(hist.status, 201)
  await call('POST', '/labels/ratings', { imageId: pngB.id, rater: 'ana', rating: 3 })
  await call('POST', '/labels/ratings', { imageId: pngB.id, rater: 'bob', rating: 4 })

  const bad: [unknown, number, string][] = [
    [{ imageId: pngA.id, rater: 'ana', rating: 11 }, 400, 'NIMA_INVALID_REQUEST'],
    [{ imageId: pngA.id, rater: 'ana', rating: 0 }, 400, 'NIMA_INVALID_REQUEST'],
    [{ imageId: pngA.id, rater: 'ana', rating: 5.5 }, 400, 'NIMA_INVALID_REQUEST'],
    [{ imageId: pngA.id, rater: 'ana' }, 400, 'NIMA_INVALID_REQUEST'],
    [{ imageId: pngA.id, rater: 'ana', rating: 5, histogram: [1, 1, 1, 1, 1, 1, 1, 1, 1, 1] }, 400, 'NIMA_INVALID_REQUEST'],
    [{ imageId: pngA.id, rater: 'ana', histogram: [1, 1] }, 400, 'NIMA_INVALID_REQUEST'],
    [{ imageId: pngA.id, rater: 'ana', histogram: new Array(10).fill(0) }, 400, 'NIMA_INVALID_REQUEST'],
    [{ imageId: 'f'.repeat(64), rater: 'ana', rating: 5 }, 404, 'NIMA_NOT_FOUND'],
  ]
  for (const [body, status, code] of bad) {
    const res = await call('POST', '/labels/ratings', body)
    t.equal(res.status, status, JSON.stringify(body))
    t.equal(res.json.error.code, code)
  }
  const page1 = await call('GET', '/labels/ratings?limit=3')
  t.equal(page1.json.ratings.length, 3)
  const page2 = await call('GET', `/labels/ratings?limit=3&after=${page1.json.next}`)
  t.equal(page2.json.ratings.length, 1)
  t.equal(page2.json.next, null)
  t.equal((await call('GET', '/labels/ratings?rater=bob')).json.ratings.length, 1)

  const extra = await call('POST', '/labels/ratings', { imageId: pngB.id, rater: 'cy', rating: 9 })
  t.equal((await call('DELETE', `/labels/ratings/${extra.json.rating.id}`)).status, 204)
  const gone = await call('DELETE', `/labels/ratings/${extra.json.rating.id}`)
  t.equal(gone.status, 404)
  t.equal(gone.json.error.code, 'NIMA_NOT_FOUND')
})

t.test('export (JSONL, CSV) and summary', async (t) => {
  const jsonl = await call('GET', '/labels/export')
  t.match(jsonl.headers.get('content-type'), /application\/x-ndjson/)
  const rows = parseExport(jsonl.text)
  t.equal(rows.length, 4)
  t.match(rows.find((r) => r.rater === 'ava'), { imageId: pngA.id, histogram: [0, 0, 1, 2, 3, 4, 3, 2, 1, 0], group: 'hotel-a' })
  const csv = await call('GET', '/labels/export?format=csv')
  t.match(csv.headers.get('content-type'), /text\/csv/)
  t.same(
    parseExport(csv.text).map((r) => [r.imageId, r.rater, r.rating]),
    rows.map((r) => [r.imageId, r.rater, r.rating]),
  )
  t.equal((await call('GET', '/labels/export?format=xml')).status, 400)

  const s = (await call('GET', '/labels/summary')).json
  t.match(s, { images: 3, labelledImages: 2, ratings: 4, histogramLabels: 1 })
  t.same(s.ratingHistogram, [0, 0, 1, 1, 0, 0, 0, 1, 0, 0])
  // image A: ana 8 vs ava (histogram mean 96/16 = 6) → 2; image B: 3 vs 4 → 1
  t.match(s.agreement, { images: 2, pairs: 2, meanAbsDiff: 1.5, within1: 0.5, exact: 0 })
  t.match(s.ratingStd, { sigma: 1.4, source: 'default' })
})

t.test('GET /label serves the page with a strict CSP', async (t) => {
  const page = await fetch(`${svc.url}/label`)
  t.equal(page.status, 200)
  t.match(page.headers.get('content-type'), /text\/html/)
  t.match(page.headers.get('content-security-policy'), /default-src 'self'/)
  t.match(await page.text(), /<script type="module" src="\/label\/app.js">/)
  const js = await fetch(`${svc.url}/label/app.js`)
  t.match(js.headers.get('content-type'), /javascript/)
  t.equal((await fetch(`${svc.url}/label/app.css`)).status, 200)
})

t.test('with API keys: the page stays public, the API needs the key', async (t) => {
  const keyed = await startLabelApp(join(dir, 'keyed.sqlite'), { API_KEYS: 'secret-1' })
  t.teardown(keyed.close)
  t.equal((await fetch(`${keyed.url}/label`)).status, 200)
  const refused = await fetch(`${keyed.url}/labels/summary`)
  t.equal(refused.status, 401)
  t.equal(((await refused.json()) as any).error.code, 'NIMA_UNAUTHORIZED')
  t.equal((await fetch(`${keyed.url}/labels/summary`, { headers: { authorization: 'Bearer secret-1' } })).status, 200)
})
