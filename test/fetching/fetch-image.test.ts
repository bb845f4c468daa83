/**
 * The fetcher's ordinary path: a fetch that is allowed, what is sent and returned,
 * redirects followed by hand, pooling, option validation.
 * SSRF refusals: fetch-image-ssrf.test.ts; size, time and upstream failures:
 * fetch-image-limits.test.ts.
 */
import t from 'tap'
import { createAddressPolicy } from '../../src/fetching/address-policy.js'
import { createImageFetcher, fetchImage, DEFAULT_USER_AGENT } from '../../src/fetching/fetch-image.js'
import { caught, PNG_BYTES, probeConnects, recordingLookup, startServer } from './helpers.js'

// 127.0.0.1 stands in for a public address: the allowlist is the only way past the policy.
const allowLoopback = createAddressPolicy({ allow: ['127.0.0.1/32'] })

t.test('fetches an allowlisted address and reports what it got', async (t) => {
  const server = await startServer(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'image/png' })
    res.end(PNG_BYTES)
  })
  const fetcher = createImageFetcher({ policy: allowLoopback })
  t.teardown(() => fetcher.close())

  const image = await fetcher.fetch(server.url('/photo.png?sig=secret#frag'))
  t.same(image.bytes, PNG_BYTES)
  t.equal(image.contentType, 'image/png')
  t.equal(image.finalUrl, server.url('/photo.png?sig=secret'), 'fragment dropped, query kept')
  t.equal(image.redirects, 0)
  t.equal(image.remoteAddress, '127.0.0.1')
  t.equal(image.timings.dnsMs, undefined, 'no lookup for an IP literal')
  t.type(image.timings.totalMs, 'number')

  const req = server.requests[0]!
  t.equal(req.url, '/photo.png?sig=secret', 'the query is sent upstream, the fragment is not')
  t.equal(req.headers['user-agent'], DEFAULT_USER_AGENT)
  t.match(req.headers['user-agent'], /nima-serve/)
  t.equal(req.headers['accept-encoding'], 'identity')
  t.equal(req.headers.host, `127.0.0.1:${server.port}`)
})

t.test('a named host: resolved once, connected by address, Host header kept', async (t) => {
  const server = await startServer(t, (_req, res) => res.end(PNG_BYTES))
  const resolver = recordingLookup({ 'images.intranet': ['127.0.0.1'] })
  const probe = probeConnects(t)
  const fetcher = createImageFetcher({
    policy: createAddressPolicy({ allow: ['images.intranet'] }),
    lookup: resolver.lookup,
    userAgent: 'nima-serve/test',
  })
  t.teardown(() => fetcher.close())

  const image = await fetcher.fetch(server.urlFor('images.intranet', '/a.jpg'))
  t.same(image.bytes, PNG_BYTES)
  t.same(resolver.calls, ['images.intranet'])
  t.same(probe.attempts, ['127.0.0.1'], 'the socket was opened to the checked address')
  t.type(image.timings.dnsMs, 'number')
  t.equal(server.requests[0]!.headers.host, `images.intranet:${server.port}`)
  t.equal(server.requests[0]!.headers['user-agent'], 'nima-serve/test')
})

t.test('wildcard allowlist entries match subdomains only', async (t) => {
  const server = await startServer(t, (_req, res) => res.end('ok'))
  const resolver = recordingLookup({ 'a.cdn.intranet': ['127.0.0.1'], 'cdn.intranet': ['127.0.0.1'] })
  const fetcher = createImageFetcher({ policy: createAddressPolicy({ allow: ['*.cdn.intranet'] }), lookup: resolver.lookup })
  t.teardown(() => fetcher.close())

  t.equal((await fetcher.fetch(server.urlFor('A.CDN.intranet'))).bytes.toString(), 'ok', 'case-insensitive')
  t.match(await caught(fetcher.fetch(server.urlFor('cdn.intranet'))), { code: 'NIMA_URL_BLOCKED' })
})

t.test('follows relative and absolute redirects by hand', async (t) => {
  const server = await startServer(t, (req, res) => {
    switch (req.url) {
      case '/start':
        res.writeHead(302, { location: 'next?x=1' }).end()
        break
      case '/next?x=1':
        res.writeHead(301, { location: `http://127.0.0.1:${server.port}/dir/third` }).end()
        break
      case '/dir/third':
        res.writeHead(303, { location: '../final' }).end()
        break
      case '/final':
        res.writeHead(200, { 'content-type': 'image/jpeg' }).end(PNG_BYTES)
        break
      default:
        res.writeHead(404).end()
    }
  })
  const fetcher = createImageFetcher({ policy: allowLoopback, maxRedirects: 3 })
  t.teardown(() => fetcher.close())

  const image = await fetcher.fetch(server.url('/start'))
  t.equal(image.redirects, 3)
  t.equal(image.finalUrl, server.url('/final'))
  t.equal(image.contentType, 'image/jpeg')
  t.same(server.requests.map((r) => r.url), ['/start', '/next?x=1', '/dir/third', '/final'])
})

t.test('307 and 308 are followed too', async (t) => {
  const server = await startServer(t, (req, res) => {
    if (req.url === '/a') res.writeHead(307, { location: '/b' }).end()
    else if (req.url === '/b') res.writeHead(308, { location: '/c' }).end()
    else res.end('done')
  })
  const image = await fetchImage(server.url('/a'), { policy: allowLoopback })
  t.equal(image.redirects, 2)
  t.equal(image.bytes.toString(), 'done')
})

t.test('every hop is resolved once: one lookup per hop', async (t) => {
  const server = await startServer(t, (req, res) => {
    if (req.url === '/one') res.writeHead(302, { location: `http://b.intranet:${server.port}/two` }).end()
    else res.end('two')
  })
  const resolver = recordingLookup({ 'a.intranet': ['127.0.0.1'], 'b.intranet': ['127.0.0.1'] })
  const fetcher = createImageFetcher({ policy: createAddressPolicy({ allow: ['*.intranet'] }), lookup: resolver.lookup })
  t.teardown(() => fetcher.close())

  const image = await fetcher.fetch(server.urlFor('a.intranet', '/one'))
  t.equal(image.bytes.toString(), 'two')
  t.same(resolver.calls, ['a.intranet', 'b.intranet'])
  t.equal(server.requests[1]!.headers.host, `b.intranet:${server.port}`)
})

t.test('redirect without Location is an upstream failure', async (t) => {
  const server = await startServer(t, (_req, res) => res.writeHead(302).end())
  const err = await caught(fetchImage(server.url('/x'), { policy: allowLoopback }))
  t.match(err, { code: 'NIMA_UPSTREAM_FAILED', statusCode: 502, message: /302 without a Location/ })
})

t.test('one dispatcher per fetcher: sequential fetches reuse the connection', async (t) => {
  const server = await startServer(t, (_req, res) => res.end('x'))
  const fetcher = createImageFetcher({ policy: allowLoopback })
  t.teardown(() => fetcher.close())
  for (let i = 0; i < 10; i++) await fetcher.fetch(server.url(`/${i}`))
  t.equal(server.requests.length, 10)
  // undici may open a second socket while the first is still finishing its first
  // response; after that, every request rides a pooled connection.
  t.ok(server.connections <= 2, `10 fetches over ${server.connections} connection(s)`)
})

t.test('fetch after close() rejects', async (t) => {
  const fetcher = createImageFetcher()
  await fetcher.close()
  await fetcher.close()
  t.match(await caught(fetcher.fetch('http://example.com/')), { message: /after close/ })
})

t.test('an aborted caller signal rejects with its reason', async (t) => {
  const server = await startServer(t, () => {
    /* never answers */
  })
  const fetcher = createImageFetcher({ policy: allowLoopback })
  t.teardown(() => fetcher.close())

  const reason = new Error('client went away')
  t.equal(await caught(fetcher.fetch(server.url(), AbortSignal.abort(reason))), reason, 'already aborted')

  const controller = new AbortController()
  const pending = fetcher.fetch(server.url('/slow'), controller.signal)
  setTimeout(() => controller.abort(reason), 50)
  t.equal(await caught(pending), reason, 'aborted while waiting for headers')

  const hanging = createImageFetcher({ policy: allowLoopback, lookup: () => new Promise(() => {}) })
  t.teardown(() => hanging.close())
  const lookupController = new AbortController()
  const resolving = hanging.fetch('http://slow-dns.example.com/', lookupController.signal)
  setTimeout(() => lookupController.abort(reason), 20)
  t.equal(await caught(resolving), reason, 'aborted while resolving')
})

t.test('options are validated up front, naming the option', async (t) => {
  t.throws(() => createImageFetcher({ maxBytes: 0 }), { name: 'TypeError', message: 'Image fetcher option maxBytes must be an integer ≥ 1, got 0' })
  t.throws(() => createImageFetcher({ maxRedirects: -1 }), { message: /maxRedirects must be an integer ≥ 0, got -1/ })
  t.throws(() => createImageFetcher({ headersTimeoutMs: 1.5 }), { message: /headersTimeoutMs must be an integer ≥ 1, got 1.5/ })
  t.throws(() => createImageFetcher({ userAgent: 'a\r\nx-injected: 1' }), { message: /userAgent must be a non-empty single-line string/ })
  t.throws(() => createImageFetcher({ lookup: 'dns' as never }), { message: /lookup must be a function/ })
  t.throws(() => createImageFetcher({ policy: {} as never }), { message: /policy must come from createAddressPolicy/ })
})
