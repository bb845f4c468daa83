import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { sharedImages } from '../helpers/paths.js'
import { startTestService, startUpstream } from '../helpers/service.js'

const svc = await startTestService({ RANK_MAX_IMAGES: 10 })
t.teardown(() => svc.server.shutdown())
let hits = 0
const upstream = await startUpstream((req, res) => {
  hits++
  const path = req.url!.split('?')[0]!
  if (path.startsWith('/img/')) {
    try {
      return void res.writeHead(200).end(readFileSync(join(sharedImages, path.slice(5))))
    } catch {
      /* fall through */
    }
  }
  if (path === '/garbage') return void res.writeHead(200, { 'content-type': 'image/jpeg' }).end('not an image')
  res.writeHead(404).end()
})
t.teardown(upstream.close)

const rank = async (body: unknown) => {
  const res = await fetch(svc.url + '/rank', { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } })
  return { status: res.status, json: (await res.json()) as any }
}

t.test('ranks a hotel, keeps failures apart, scores byte-identical images once', async (t) => {
  const u = (p: string) => `${upstream.url}/img/${p}`
  const images = [
    { url: u('idealo/aesthetic1.jpg'), id: 'a1' },
    { url: u('idealo/aesthetic3.jpg'), id: 'a3' },
    { url: u('idealo/aesthetic1.jpg') + '?copy=2', id: 'a1-copy' },
    { url: `${upstream.url}/missing.jpg`, id: 'gone' },
    { url: `${upstream.url}/garbage`, id: 'garbage' },
    { url: 'http://169.254.169.254/latest/meta-data', id: 'metadata' },
    { url: u('tid2013/ref_I03.png'), id: 'ref' },
    { url: u('tid2013/dist_I03.png'), id: 'dist' },
  ]
  hits = 0
  const r = await rank({ images })
  t.equal(r.status, 200)
  t.equal(hits, 7, 'each of the 7 distinct allowed URLs fetched once; the refused one never contacted')
  t.same(r.json.ranked.map((e: any) => e.rank), [1, 2, 3], 'the TID2013 reference and its distorted copy are one picture')
  const tid = r.json.ranked.find((e: any) => e.id === 'ref' || e.id === 'dist')
  t.same(tid.nearDuplicates.map((n: any) => n.id), [tid.id === 'ref' ? 'dist' : 'ref'], 'the lower-scoring one is folded into the better one')
  t.same(r.json.nearDuplicates, { enabled: true, maxDistance: 14 }, 'the defaults in effect are echoed')
  const apart = await rank({ images, nearDuplicates: { enabled: false } })
  t.same(apart.json.ranked.map((e: any) => e.rank), [1, 2, 3, 4], 'grouping off: byte-identical images only')
  const combined = r.json.ranked.map((e: any) => e.combined.score)
  t.same(combined, [...combined].sort((a: number, b: number) => b - a), 'best first')
  const a1 = r.json.ranked.find((e: any) => e.id === 'a1')
  t.same(a1.duplicates, [{ url: images[2]!.url, id: 'a1-copy' }], 'identical bytes listed together')
  for (const e of r.json.ranked) {
    t.same(e.combined.weights, { aesthetic: 0.6, technical: 0.4 }, 'the same {score, weights} shape as /score')
    t.ok(Math.abs(e.combined.score - (0.6 * e.scores.aesthetic.mean + 0.4 * e.scores.technical.mean)) < 1e-9)
  }
  const failed = Object.fromEntries(r.json.failed.map((f: any) => [f.id, f.error.code]))
  t.same(failed, { gone: 'NIMA_UPSTREAM_FAILED', garbage: 'NIMA_UNSUPPORTED_MEDIA_TYPE', metadata: 'NIMA_URL_BLOCKED' })
  t.same(r.json.models.aesthetic.synthetic, true)
})

t.test('ranking agrees with /score for the same images', async (t) => {
  const paths = ['idealo/42039.jpg', 'idealo/42040.jpg', 'idealo/42041.jpg']
  const r = await rank({ images: paths.map((p) => ({ url: `${upstream.url}/img/${p}` })), weights: { aesthetic: 1, technical: 0 } })
  for (const p of paths) {
    const s = (await (await fetch(svc.url + '/score', { method: 'POST', body: readFileSync(join(sharedImages, p)), headers: { 'content-type': 'image/jpeg' } })).json()) as any
    const e = r.json.ranked.find((x: any) => x.url.endsWith(p))
    t.equal(e.combined.score, s.scores.aesthetic.mean, `${p}: weight 1 on aesthetic → combined = aesthetic mean`)
  }
  t.same(r.json.weights, { aesthetic: 1, technical: 0 })
})

t.test('limits and validation', async (t) => {
  const many = Array.from({ length: 11 }, (_, i) => ({ url: `${upstream.url}/img/${i}.jpg` }))
  t.equal((await rank({ images: many })).json.error.code, 'NIMA_TOO_MANY_IMAGES')
  t.equal((await rank({ images: [] })).json.error.code, 'NIMA_INVALID_REQUEST')
  t.equal((await rank({ images: [{ url: 5 }] })).status, 400)
  t.equal((await rank({ imgs: [] })).status, 400)
  t.equal((await rank({ images: [{ url: 'http://x/' }], models: ['nope'] })).json.error.code, 'NIMA_UNKNOWN_MODEL')
})
