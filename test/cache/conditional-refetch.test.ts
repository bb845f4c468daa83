import t, { type Test } from 'tap'
import { readFileSync } from 'node:fs'
import type { IncomingMessage, ServerResponse } from 'node:http'
import { metricSample } from '../helpers/metrics.js'
import { samplePhotos } from '../helpers/paths.js'
import { startTestService, startUpstream, type RunningService } from '../helpers/service.js'

// A hotel's photos on an upstream that serves ETags (and, for some paths, Cache-Control)
// and counts what it sends: bodies (200) and 304s.
const jpegs = samplePhotos()
  .filter((p) => p.endsWith('.jpg'))
  .map((p) => readFileSync(p))
const photos = jpegs.slice(0, 6)

interface Upstream {
  url: string
  bodies: number
  notModified: number
  requests: number
  /** path → [etag, bytes, extra headers] */
  files: Map<string, [string, Buffer, Record<string, string>]>
}

async function hotelUpstream(t: Test): Promise<Upstream> {
  const state: Upstream = { url: '', bodies: 0, notModified: 0, requests: 0, files: new Map() }
  photos.forEach((bytes, i) => state.files.set(`/hotel/${i}.jpg`, [`"v1-${i}"`, bytes, {}]))
  const up = await startUpstream((req: IncomingMessage, res: ServerResponse) => {
    state.requests += 1
    const file = state.files.get(req.url ?? '')
    if (!file) {
      res.writeHead(404)
      res.end()
      return
    }
    const [etag, bytes, extra] = file
    if (req.headers['if-none-match'] === etag) {
      state.notModified += 1
      res.writeHead(304, { etag, ...extra })
      res.end()
      return
    }
    state.bodies += 1
    res.writeHead(200, { 'content-type': 'image/jpeg', 'content-length': bytes.length, etag, ...extra })
    res.end(bytes)
  })
  t.teardown(() => up.close())
  state.url = up.url
  return state
}

async function rank(svc: RunningService, urls: string[]) {
  const r = await fetch(`${svc.url}/rank`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ images: urls.map((url) => ({ url })) }) })
  if (r.status !== 200) throw new Error(`rank: ${r.status} ${await r.text()}`)
  return (await r.json()) as {
    ranked: { url: string; image: { id: string }; combined: { score: number }; cache: { result: string; upstream?: string }; duplicates: { url: string }[]; nearDuplicates: { url: string }[] }[]
    failed: unknown[]
  }
}

async function counters(svc: RunningService) {
  const text = await (await fetch(`${svc.url}/metrics`)).text()
  return {
    inferred: metricSample(text, 'nima_images_scored_total'),
    decoded: metricSample(text, 'nima_decode_duration_seconds_count'),
    fetchedBodies: metricSample(text, 'nima_fetch_bytes_count'),
    notModified: metricSample(text, 'nima_cache_revalidations_total', 'outcome="not_modified"'),
    fresh: metricSample(text, 'nima_cache_revalidations_total', 'outcome="fresh"'),
    bytesSaved: metricSample(text, 'nima_cache_upstream_bytes_saved_total'),
    memoryHits: metricSample(text, 'nima_cache_lookups_total', 'layer="memory"', 'result="hit"'),
  }
}

/** Every input's cache report, by URL (duplicates share their entry's). */
function reports(body: Awaited<ReturnType<typeof rank>>): Map<string, { result: string; upstream?: string }> {
  const out = new Map<string, { result: string; upstream?: string }>()
  for (const e of body.ranked) for (const u of [e.url, ...e.duplicates.map((d) => d.url), ...e.nearDuplicates.map((d) => d.url)]) out.set(u, e.cache)
  return out
}

/** The ranking without what legitimately differs between a cold and a warm call. */
function ranking(body: Awaited<ReturnType<typeof rank>>) {
  return body.ranked.map(({ cache: _c, ...rest }) => rest)
}

t.test('a warm /rank of an unchanged hotel downloads no body and runs no inference; a changed photo is fetched and scored again', async (t) => {
  t.equal(photos.length, 6, 'six sample photos')
  const up = await hotelUpstream(t)
  const svc = await startTestService()
  t.teardown(() => svc.server.shutdown())
  const urls = photos.map((_, i) => `${up.url}/hotel/${i}.jpg`)

  const cold = await rank(svc, urls)
  t.same(cold.failed, [])
  t.equal(up.bodies, 6, 'cold: every body downloaded')
  const afterCold = await counters(svc)
  t.ok(afterCold.inferred > 0 && afterCold.decoded > 0, 'cold: decoded and inferred')
  for (const [url, c] of reports(cold)) t.equal(c.upstream, 'downloaded', `cold: ${url} downloaded`)
  t.ok([...reports(cold).values()].some((c) => c.result === 'miss'), 'cold: computed')

  const warm = await rank(svc, urls)
  const afterWarm = await counters(svc)
  t.equal(up.bodies, 6, 'warm: no body downloaded')
  t.equal(up.notModified, 6, 'warm: six 304s')
  t.equal(afterWarm.inferred, afterCold.inferred, 'warm: no inference')
  t.equal(afterWarm.decoded, afterCold.decoded, 'warm: no decode')
  t.equal(afterWarm.fetchedBodies, afterCold.fetchedBodies, 'warm: nima_fetch_bytes saw no body')
  t.equal(afterWarm.notModified - afterCold.notModified, 6, 'nima_cache_revalidations_total{outcome="not_modified"}')
  t.equal(afterWarm.bytesSaved - afterCold.bytesSaved, photos.reduce((a, b) => a + b.length, 0), 'the bodies not downloaded are counted')
  for (const [url, c] of reports(warm)) t.same(c, { result: 'memory', upstream: 'not-modified' }, `warm: ${url}`)
  t.same(ranking(warm), ranking(cold), 'the same ranking, scores and near-duplicate folding as cold')

  // Photo 2 changes: another picture under a new ETag.
  const changed = jpegs[jpegs.length - 1]!
  up.files.set('/hotel/2.jpg', ['"v2-2"', changed, {}])
  const third = await rank(svc, urls)
  const afterChange = await counters(svc)
  t.equal(up.bodies, 7, 'only the changed photo downloaded')
  t.equal(up.notModified, 11, 'the five others answered 304')
  const byUrl = reports(third)
  t.same(byUrl.get(urls[2]!), { result: 'miss', upstream: 'downloaded' }, 'the changed photo is scored again')
  t.ok(afterChange.inferred > afterWarm.inferred, 'inference ran for it')
  t.ok(afterChange.decoded > afterWarm.decoded, 'it was decoded')
  const entry = third.ranked.find((e) => [e.url, ...e.duplicates.map((d) => d.url), ...e.nearDuplicates.map((d) => d.url)].includes(urls[2]!))!
  t.not(entry.image.id, cold.ranked.find((e) => e.url === urls[2])?.image.id ?? '', 'with its new content')
})

t.test('Cache-Control: no-store is not remembered; max-age spares even the revalidation', async (t) => {
  const up = await hotelUpstream(t)
  up.files.set('/nostore.jpg', ['"n"', photos[0]!, { 'cache-control': 'no-store' }])
  up.files.set('/maxage.jpg', ['"m"', photos[1]!, { 'cache-control': 'public, max-age=600' }])
  const svc = await startTestService()
  t.teardown(() => svc.server.shutdown())

  await rank(svc, [`${up.url}/nostore.jpg`, `${up.url}/maxage.jpg`])
  t.equal(up.requests, 2)
  const second = reports(await rank(svc, [`${up.url}/nostore.jpg`, `${up.url}/maxage.jpg`]))
  t.equal(up.requests, 3, 'one more request: the no-store URL, nothing for the max-age one')
  t.equal(up.notModified, 0, 'no-store: no validators remembered, so no conditional request')
  t.same(second.get(`${up.url}/nostore.jpg`), { result: 'memory', upstream: 'downloaded' }, 'no-store: downloaded again, its scores still cached by content')
  t.same(second.get(`${up.url}/maxage.jpg`), { result: 'memory', upstream: 'fresh' }, 'max-age: no request at all')
  const c = await counters(svc)
  t.equal(c.fresh, 1)
  t.equal(c.bytesSaved, photos[1]!.length)
})

t.test('an upload of a photo already scored is served from the cache; /score says so', async (t) => {
  const svc = await startTestService()
  t.teardown(() => svc.server.shutdown())
  const post = async () => (await fetch(`${svc.url}/score`, { method: 'POST', headers: { 'content-type': 'image/jpeg' }, body: photos[0]! })).json() as Promise<Record<string, any>>
  const first = await post()
  const second = await post()
  t.same(first.cache, { result: 'miss' })
  t.same(second.cache, { result: 'memory' })
  t.same(second.scores, first.scores, 'bit-identical scores')
  t.same(second.image, first.image, 'image info, perceptual hash included')
  t.same(second.combined, first.combined)
  t.same(second.timings.decodeMs, 0)
  t.same(second.timings.inferenceMs, 0)
  const text = await (await fetch(`${svc.url}/metrics`)).text()
  t.equal(metricSample(text, 'nima_images_scored_total', 'model="aesthetic"'), 1, 'inferred once')
})

t.test('a request for another model set runs only the model missing from the cache', async (t) => {
  const svc = await startTestService()
  t.teardown(() => svc.server.shutdown())
  const post = async (models: string) =>
    (await fetch(`${svc.url}/score?models=${models}`, { method: 'POST', headers: { 'content-type': 'image/jpeg' }, body: photos[0]! })).json() as Promise<Record<string, any>>
  await post('aesthetic')
  const both = await post('aesthetic,technical')
  t.same(both.cache, { result: 'miss' })
  t.same(Object.keys(both.scores).sort(), ['aesthetic', 'technical'])
  const text = await (await fetch(`${svc.url}/metrics`)).text()
  t.equal(metricSample(text, 'nima_images_scored_total', 'model="aesthetic"'), 1, 'aesthetic ran once')
  t.equal(metricSample(text, 'nima_images_scored_total', 'model="technical"'), 1, 'technical ran once')
  t.same((await post('technical,aesthetic')).cache, { result: 'memory' })
})

t.test('SCORE_CACHE=off: every request downloads, decodes and infers', async (t) => {
  const up = await hotelUpstream(t)
  const svc = await startTestService({ SCORE_CACHE: 'off' })
  t.teardown(() => svc.server.shutdown())
  const urls = [`${up.url}/hotel/0.jpg`]
  const first = reports(await rank(svc, urls))
  const second = reports(await rank(svc, urls))
  t.same(first.get(urls[0]!), { result: 'off' })
  t.same(second.get(urls[0]!), { result: 'off' })
  t.equal(up.bodies, 2)
  t.equal(up.notModified, 0, 'no conditional request')
  const text = await (await fetch(`${svc.url}/metrics`)).text()
  t.equal(metricSample(text, 'nima_images_scored_total', 'model="aesthetic"'), 2)
  t.equal(metricSample(text, 'nima_cache_memory_entries'), 0)
})
