/**
 * Conditional re-fetch (the score cache's revalidation): validators sent as
 * If-None-Match / If-Modified-Since, a 304 answered without a body, the response's
 * caching headers reported, and the same SSRF checks on every hop.
 */
import t, { type Test } from 'tap'
import { createAddressPolicy } from '../../src/fetching/address-policy.js'
import { createImageFetcher, type ImageFetcherOptions } from '../../src/fetching/fetch-image.js'
import { caught, recordingLookup, startServer } from './helpers.js'

const allowLoopback = createAddressPolicy({ allow: ['127.0.0.1'] })

function fetcherFor(t: Test, options: ImageFetcherOptions = { policy: allowLoopback }) {
  const fetcher = createImageFetcher(options)
  t.teardown(() => fetcher.close())
  return fetcher
}

const body = Buffer.from('pretend image bytes')
const etag = '"abc-1"'
const lastModified = 'Tue, 01 Dec 2026 02:00:00 GMT'

t.test('a 200 reports its validators and Cache-Control; a revalidation that still matches is a 304 with no body', async (t) => {
  const server = await startServer(t, (req, res) => {
    const headers = { etag, 'last-modified': lastModified, 'cache-control': 'public, max-age=60', age: '5' }
    if (req.headers['if-none-match'] === etag) return void res.writeHead(304, headers).end()
    res.writeHead(200, { ...headers, 'content-type': 'image/jpeg' }).end(body)
  })
  const fetcher = fetcherFor(t)
  const first = await fetcher.fetch(server.url('/p.jpg'))
  t.same(first.bytes, body)
  t.same(first.caching, { etag, lastModified, cacheControl: 'public, max-age=60', age: 5 })
  t.equal(server.requests[0]!.headers['if-none-match'], undefined, 'a plain fetch sends no validator')

  const again = await fetcher.revalidate(server.url('/p.jpg'), { etag, lastModified })
  t.ok('notModified' in again && again.notModified, 'not modified')
  t.same(again.caching, { etag, lastModified, cacheControl: 'public, max-age=60', age: 5 })
  t.equal(server.requests[1]!.headers['if-none-match'], etag)
  t.equal(server.requests[1]!.headers['if-modified-since'], lastModified)

  const changed = await fetcher.revalidate(server.url('/p.jpg'), { etag: '"old"' })
  t.notOk('notModified' in changed, 'a changed body comes back whole')
  t.same('bytes' in changed ? changed.bytes : undefined, body)
})

t.test('a 304 to a plain GET is an upstream failure, as before', async (t) => {
  const server = await startServer(t, (_req, res) => res.writeHead(304).end())
  t.match(await caught(fetcherFor(t).fetch(server.url('/p.jpg'))), { code: 'NIMA_UPSTREAM_FAILED' })
})

t.test('validators that could not be sent back safely are dropped, in both directions', async (t) => {
  const server = await startServer(t, (_req, res) => res.writeHead(200, { etag: `"${'x'.repeat(300)}"`, 'last-modified': 'Tue, 01 Dec 2026 02:00:00 GMT' }).end(body))
  const fetcher = fetcherFor(t)
  const got = await fetcher.fetch(server.url('/p.jpg'))
  t.same(got.caching, { lastModified }, 'an ETag over 256 characters is not kept')
  await fetcher.revalidate(server.url('/p.jpg'), { etag: '"é"', lastModified })
  t.equal(server.requests[1]!.headers['if-none-match'], undefined, 'a non-ASCII validator is not sent')
  t.equal(server.requests[1]!.headers['if-modified-since'], lastModified)
})

t.test('a revalidation goes through the SSRF checks: a redirect into a refused address is refused', async (t) => {
  const internal = await startServer(t, (_req, res) => res.writeHead(304).end())
  const front = await startServer(t, (_req, res) => res.writeHead(302, { location: internal.url('/admin') }).end())
  const resolver = recordingLookup({ 'front.example.com': ['127.0.0.1'] })
  const fetcher = fetcherFor(t, { lookup: resolver.lookup, policy: createAddressPolicy({ allow: ['front.example.com'] }) })
  t.match(await caught(fetcher.revalidate(front.urlFor('front.example.com', '/p.jpg'), { etag })), { code: 'NIMA_URL_BLOCKED' })
  t.equal(internal.connections, 0, 'the refused target saw no connection')
  t.match(await caught(fetcherFor(t).revalidate('http://169.254.169.254/latest/meta-data/', { etag })), { code: 'NIMA_URL_BLOCKED' }, 'a refused literal, at once')
})
