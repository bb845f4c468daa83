// PREPROCESS=fast through the real service: the responses say which preprocessing made
// them (/score, /rank entries, OIP), and the score cache keeps exact and fast apart.
import sharp from 'sharp'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { sharedImages } from '../helpers/paths.js'
import { startTestService } from '../helpers/service.js'

// A 12 MP re-encode of a sample photo: DCT scaling decodes it at a fraction of its size.
const large = await sharp(readFileSync(join(sharedImages, 'idealo/42039.jpg'))).resize(4000, 3000, { fit: 'fill' }).jpeg({ quality: 90 }).toBuffer()

const exact = await startTestService({ SCORE_CACHE: 'on' })
t.teardown(() => exact.server.shutdown())
const fast = await startTestService({ SCORE_CACHE: 'on', PREPROCESS: 'fast' })
t.teardown(() => fast.server.shutdown())

async function score(base: string, bytes: Buffer) {
  const res = await fetch(base + '/score', { method: 'POST', body: bytes, headers: { 'content-type': 'image/jpeg' } })
  return { status: res.status, json: (await res.json()) as any }
}

t.test('/score says which preprocessing produced it; fast scores differ, the photo the same', async (t) => {
  const a = await score(exact.url, large)
  const b = await score(fast.url, large)
  t.equal(a.status, 200)
  t.equal(b.status, 200)
  t.equal(a.json.image.preprocess, 'exact')
  t.equal(b.json.image.preprocess, 'fast')
  t.same([b.json.image.width, b.json.image.height, b.json.image.id], [4000, 3000, a.json.image.id])
  t.not(b.json.scores.aesthetic.mean, a.json.scores.aesthetic.mean, 'other pixels, another (synthetic) score')
  const again = await score(fast.url, large)
  t.equal(again.json.cache.result, 'memory', 'the second fast request is served from the cache')
  t.equal(again.json.image.preprocess, 'fast', 'and still says fast')
  t.same(again.json.scores, b.json.scores)
})

t.test('/rank entries carry it, and so do the OIP parameters for images', async (t) => {
  const form = new FormData()
  form.append('image', new Blob([large], { type: 'image/jpeg' }), 'large.jpg')
  form.append('image', new Blob([readFileSync(join(sharedImages, 'idealo/42040.jpg'))], { type: 'image/jpeg' }), 'b.jpg')
  const res = await fetch(fast.url + '/rank', { method: 'POST', body: form })
  const body = (await res.json()) as any
  t.equal(res.status, 200, JSON.stringify(body).slice(0, 300))
  t.ok(body.ranked.length === 2 && body.ranked.every((r: any) => r.image.preprocess === 'fast'))
  const oip = await fetch(fast.url + '/v2/models/aesthetic/infer', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ inputs: [{ name: 'image', datatype: 'BYTES', shape: [1], data: [large.toString('base64')] }] }),
  })
  const inferred = (await oip.json()) as any
  t.equal(oip.status, 200, JSON.stringify(inferred).slice(0, 300))
  t.same(inferred.parameters, { synthetic: true, preprocess: 'fast' })
})
