/**
 * POST /rank with uploads (multipart), near-duplicate groups and a diverse top k, on
 * variants made in memory from the sample photos (issue #15).
 */
import { readFileSync } from 'node:fs'
import { basename, join } from 'node:path'
import sharp from 'sharp'
import t from 'tap'
import { sharedImages } from '../helpers/paths.js'
import { startTestService, startUpstream } from '../helpers/service.js'

const svc = await startTestService({ RANK_MAX_IMAGES: 8, RANK_UPLOAD_MAX_BYTES: 3 * 1024 * 1024 })
t.teardown(() => svc.server.shutdown())

const photo = (p: string) => readFileSync(join(sharedImages, p))
const base = photo('idealo/aesthetic1.jpg')
const meta = await sharp(base).metadata()
// A hotel's gallery as suppliers send it: one photo three times (original, resized, recompressed), three others.
const gallery = new Map<string, Buffer>([
  ['a1.jpg', base],
  ['a1-half.jpg', await sharp(base).resize(Math.round(meta.width! / 2)).jpeg({ quality: 80 }).toBuffer()],
  ['a1-q30.webp', await sharp(base).webp({ quality: 30 }).toBuffer()],
  ['a3.jpg', photo('idealo/aesthetic3.jpg')],
  ['a4.jpg', photo('idealo/aesthetic4.jpg')],
  ['ref_I04.png', photo('tid2013/ref_I04.png')],
])
const family = new Set(['a1.jpg', 'a1-half.jpg', 'a1-q30.webp'])

function form(files: [string, Buffer][], options?: unknown): FormData {
  const f = new FormData()
  if (options !== undefined) f.append('options', JSON.stringify(options))
  for (const [name, bytes] of files) f.append('image', new Blob([bytes]), name)
  return f
}

async function upload(body: FormData) {
  const res = await fetch(svc.url + '/rank', { method: 'POST', body })
  return { status: res.status, json: (await res.json()) as any }
}

t.test('uploads: near-duplicates fold into the best of them, with distance and similarity', async (t) => {
  const r = await upload(form([...gallery]))
  t.equal(r.status, 200)
  t.equal(r.json.ranked.length, 4, 'six uploads, four pictures')
  const lead = r.json.ranked.find((e: any) => family.has(e.id))
  t.same(new Set([lead.id, ...lead.nearDuplicates.map((n: any) => n.id)]), family, 'the three copies are one entry')
  const scoreOf = new Map<string, number>()
  const all = await upload(form([...gallery], { nearDuplicates: { enabled: false } }))
  for (const e of all.json.ranked) scoreOf.set(e.id, e.combined.score)
  for (const n of lead.nearDuplicates) {
    t.ok(n.distance >= 0 && n.distance <= 14, `${n.id}: within the default threshold (${n.distance})`)
    t.equal(n.similarity, Math.max(0, 1 - n.distance / 20))
    t.ok(scoreOf.get(n.id)! <= lead.combined.score, `${n.id} scores no better than the entry that represents it`)
    t.type(n.part, 'number')
  }
  t.equal(all.json.ranked.length, 6, 'grouping off: every upload ranked')
  t.same(r.json.ranked.map((e: any) => e.part), r.json.ranked.map((e: any) => [...gallery.keys()].indexOf(e.id)), 'part = position among the image parts')
  t.ok(r.json.ranked.every((e: any) => e.url === undefined), 'no url for uploads')
})

t.test('select: the top three are three different pictures even with grouping off', async (t) => {
  const r = await upload(form([...gallery], { nearDuplicates: { enabled: false }, select: { k: 3 } }))
  t.equal(r.status, 200)
  t.same(r.json.select, { k: 3, diversity: 0.3 }, 'default diversity echoed')
  const top = r.json.ranked.slice(0, 3).map((e: any) => e.id as string)
  t.ok(top.filter((id: string) => family.has(id)).length <= 1, `at most one copy of the same photo in the top 3: ${top.join(', ')}`)
  t.same(r.json.ranked.map((e: any) => e.rank), [1, 2, 3, 4, 5, 6])
  t.same(r.json.ranked.map((e: any) => e.selected), [true, true, true, false, false, false], 'the three picks are marked selected')
  const plain = await upload(form([...gallery], { nearDuplicates: { enabled: false } }))
  t.ok(plain.json.ranked.every((e: any) => !('selected' in e)), 'no selected field without select')
})

t.test('uploads rank exactly as the same images sent as URLs', async (t) => {
  const upstream = await startUpstream((req, res) => {
    const body = gallery.get(basename(req.url ?? ''))
    if (body) res.writeHead(200).end(body)
    else res.writeHead(404).end()
  })
  t.teardown(upstream.close)
  const options = { select: { k: 2, diversity: 0.5 } }
  const byUrl = (await (
    await fetch(svc.url + '/rank', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ images: [...gallery.keys()].map((id) => ({ url: `${upstream.url}/${id}`, id })), ...options }),
    })
  ).json()) as any
  const byUpload = (await upload(form([...gallery], options))).json
  const shape = (j: any) => j.ranked.map((e: any) => [e.id, e.combined.score, e.nearDuplicates.map((n: any) => [n.id, n.distance])])
  t.same(shape(byUpload), shape(byUrl))
})

t.test('limits and bad forms', async (t) => {
  const tiny = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#808080' } }).png().toBuffer()
  const nine = Array.from({ length: 9 }, (_, i) => [`${i}.png`, tiny] as [string, Buffer])
  t.match((await upload(form(nine))).json.error, { code: 'NIMA_TOO_MANY_IMAGES', message: /9 images sent; RANK_MAX_IMAGES allows 8/ })
  const big = await sharp({ create: { width: 1200, height: 1200, channels: 3, background: '#000', noise: { type: 'gaussian', mean: 128, sigma: 60 } } }).png().toBuffer()
  const over = await upload(form([['a.png', big], ['b.png', big]]))
  t.equal(over.status, 413)
  t.match(over.json.error, { code: 'NIMA_PAYLOAD_TOO_LARGE', message: /RANK_UPLOAD_MAX_BYTES/ })
  const notJson = form([['a.png', tiny]])
  notJson.append('options', '{not json')
  const badJson = await upload(notJson)
  t.match(badJson.json.error, { code: 'NIMA_INVALID_REQUEST', message: /options.*not JSON/ })
  const badOption = await upload(form([['a.png', tiny]], { select: { k: 0 } }))
  t.match(badOption.json.error, { code: 'NIMA_INVALID_REQUEST', message: /options.*\/select\/k/ })
  t.match((await upload(form([['a.png', tiny]], { nearDuplicates: { maxDistance: 65 } }))).json.error.code, 'NIMA_INVALID_REQUEST')
  const none = new FormData()
  none.append('options', '{}')
  t.match((await upload(none)).json.error.code, 'NIMA_MISSING_IMAGE')
  const wrong = new FormData()
  wrong.append('photo', new Blob([tiny]), 'a.png')
  t.match((await upload(wrong)).json.error, { code: 'NIMA_INVALID_REQUEST', message: /"photo"/ })
  const broken = await upload(form([['ok.png', tiny], ['broken.jpg', photo('natural/truncated-broken.jpg')]]))
  t.equal(broken.status, 200, 'a bad image lands in failed, the call succeeds')
  t.match(broken.json.failed, [{ id: 'broken.jpg', part: 1, error: { code: /NIMA_(UNDECODABLE_IMAGE|UNSUPPORTED_MEDIA_TYPE)/ } }])
  t.equal((await fetch(svc.url + '/rank', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ images: [{ url: 'http://x/' }], select: { k: 2, diversity: 2 } }) })).status, 400)
  const empty = await fetch(svc.url + '/rank', { method: 'POST' })
  t.match({ status: empty.status, json: await empty.json() }, { status: 400, json: { error: { code: 'NIMA_MISSING_IMAGE' } } }, 'no body at all: a 400, not a crash')
})
