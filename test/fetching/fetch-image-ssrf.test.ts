/**
 * The fetcher must not become a proxy into the internal network. Every refusal here is
 * shown to happen before any socket is opened: the undici `beforeConnect` probe stays
 * empty and the local server sees no connection.
 */
import t, { type Test } from 'tap'
import { createAddressPolicy } from '../../src/fetching/address-policy.js'
import { createImageFetcher, type ImageFetcherOptions } from '../../src/fetching/fetch-image.js'
import { caught, probeConnects, recordingLookup, startServer } from './helpers.js'

function fetcherFor(t: Test, options: ImageFetcherOptions = {}) {
  const fetcher = createImageFetcher(options)
  t.teardown(() => fetcher.close())
  return fetcher
}

t.test('default policy refuses internal literal addresses without connecting', async (t) => {
  const server = await startServer(t, (_req, res) => res.end('secret'))
  const probe = probeConnects(t)
  const resolver = recordingLookup({})
  const fetcher = fetcherFor(t, { lookup: resolver.lookup })
  const p = server.port

  const refused: Array<[string, RegExp]> = [
    [`http://127.0.0.1:${p}/`, /127\.0\.0\.1 is refused \(loopback\)/],
    [`http://127.0.0.2:${p}/`, /loopback/],
    [`http://[::1]:${p}/`, /::1 is refused \(loopback\)/],
    [`http://[::ffff:127.0.0.1]:${p}/`, /loopback/], // IPv4-mapped
    [`http://[::ffff:10.0.0.1]/`, /private/],
    [`http://[64:ff9b::127.0.0.1]:${p}/`, /loopback/], // NAT64 embedding loopback
    [`http://[64:ff9b::a9fe:a9fe]/`, /linkLocal/], // NAT64 embedding 169.254.169.254
    [`http://[2002:7f00:1::1]:${p}/`, /loopback/], // 6to4 embedding 127.0.0.1
    [`http://[2002:a00:1::1]/`, /private/], // 6to4 embedding 10.0.0.1
    [`http://[::127.0.0.1]:${p}/`, /ipv4Compatible/],
    [`http://2130706433:${p}/`, /127\.0\.0\.1.*loopback/], // decimal form, normalised by the URL parser
    [`http://0x7f.1:${p}/`, /127\.0\.0\.1.*loopback/], // hex short form
    ['http://10.1.2.3/', /private/],
    ['http://172.16.0.1/', /private/],
    ['http://192.168.1.1/', /private/],
    ['http://169.254.169.254/latest/meta-data/', /linkLocal/],
    ['http://100.64.0.1/', /carrierGradeNat/],
    ['http://0.0.0.0/', /unspecified/],
    ['http://255.255.255.255/', /broadcast/],
    ['http://224.0.0.1/', /multicast/],
    ['http://198.18.0.1/', /benchmarking/],
    ['http://192.0.2.1/', /documentation/],
    ['http://240.0.0.1/', /reserved/],
    ['http://[::]/', /unspecified/],
    ['http://[fd00::1]/', /uniqueLocal/],
    ['http://[fc00::1]/', /uniqueLocal/],
    ['http://[fe80::1]/', /linkLocal/],
    ['http://[ff02::1]/', /multicast/],
    ['https://[fec0::1]/', /siteLocal/],
    ['http://[2001:db8::1]/', /documentation/],
  ]
  for (const [url, message] of refused) {
    const err = await caught(fetcher.fetch(url))
    t.match(err, { code: 'NIMA_URL_BLOCKED', statusCode: 400, message }, url)
  }
  t.same(resolver.calls, [], 'literal addresses are never looked up')
  t.same(probe.attempts, [], 'no connection was attempted')
  t.equal(server.connections, 0, 'the server saw nothing')
})

t.test('localhost is refused, with the system resolver and with an injected one', async (t) => {
  const server = await startServer(t, (_req, res) => res.end('secret'))
  const probe = probeConnects(t)

  // The real resolver: localhost resolves to 127.0.0.1 and/or ::1.
  const real = fetcherFor(t)
  t.match(await caught(real.fetch(server.urlFor('localhost'))), { code: 'NIMA_URL_BLOCKED', message: /"localhost" resolves to a refused address/ })

  const resolver = recordingLookup({ 'localhost.': ['127.0.0.1', '::1'] })
  const injected = fetcherFor(t, { lookup: resolver.lookup })
  t.match(await caught(injected.fetch(server.urlFor('LOCALHOST.'))), { code: 'NIMA_URL_BLOCKED' })
  t.same(resolver.calls, ['localhost.'])
  t.same(probe.attempts, [])
  t.equal(server.connections, 0)
})

t.test('a public-looking name that resolves to 127.0.0.1 is refused; the address stays out of the message', async (t) => {
  const server = await startServer(t, (_req, res) => res.end('secret'))
  const probe = probeConnects(t)
  const resolver = recordingLookup({ 'images.example.com': ['127.0.0.1'] })
  const fetcher = fetcherFor(t, { lookup: resolver.lookup })

  const err = await caught(fetcher.fetch(server.urlFor('images.example.com', '/a.jpg')))
  t.match(err, { code: 'NIMA_URL_BLOCKED', message: 'The host "images.example.com" resolves to a refused address' })
  t.notMatch(err.message, /127\.0\.0\.1/)
  t.match(err.cause, { message: /127\.0\.0\.1 \(loopback\)/ }, 'details stay in the cause, for logs')
  t.same(resolver.calls, ['images.example.com'])
  t.same(probe.attempts, [])
  t.equal(server.connections, 0)
})

t.test('a name with one public and one private address is refused', async (t) => {
  const probe = probeConnects(t)
  const resolver = recordingLookup({
    'mixed.example.com': ['93.184.215.14', '10.0.0.5'],
    'mixed6.example.com': ['2606:2800:21f:cb07:6820:80da:af6b:8b2c', 'fd12::1'],
  })
  const fetcher = fetcherFor(t, { lookup: resolver.lookup })
  t.match(await caught(fetcher.fetch('http://mixed.example.com/x.png')), { code: 'NIMA_URL_BLOCKED' })
  t.match(await caught(fetcher.fetch('http://mixed6.example.com/x.png')), { code: 'NIMA_URL_BLOCKED' })
  t.same(probe.attempts, [], 'not even the public address was contacted')
})

t.test('DNS rebinding: one lookup per hop, and the socket goes to the checked address', async (t) => {
  const server = await startServer(t, (req, res) => {
    if (req.url === '/again') res.writeHead(302, { location: '/second' }).end()
    else res.end('image')
  })
  const probe = probeConnects(t)
  // First answer: an "allowed public" address (127.0.0.1 by CIDR). Every later answer:
  // a private address, as a rebinding DNS server would give once the check is passed.
  const resolver = recordingLookup({ 'rebind.example.com': (nth) => (nth === 0 ? ['127.0.0.1'] : ['10.0.0.1']) })
  const fetcher = fetcherFor(t, { lookup: resolver.lookup, policy: createAddressPolicy({ allow: ['127.0.0.1/32'] }) })

  const image = await fetcher.fetch(server.urlFor('rebind.example.com', '/first'))
  t.equal(image.bytes.toString(), 'image')
  t.equal(image.remoteAddress, '127.0.0.1')
  t.same(resolver.calls, ['rebind.example.com'], 'exactly one lookup for one hop')
  t.same(probe.attempts, ['127.0.0.1'], 'the socket connected to the checked address, not to a second answer')
  t.equal(server.connections, 1)

  // The next fetch of that name gets the private answer and is refused before connecting.
  t.match(await caught(fetcher.fetch(server.urlFor('rebind.example.com', '/first'))), { code: 'NIMA_URL_BLOCKED' })
  t.same(resolver.calls, ['rebind.example.com', 'rebind.example.com'])
  t.same(probe.attempts, ['127.0.0.1'])
})

t.test('DNS rebinding across a redirect: the next hop is looked up and checked again', async (t) => {
  const server = await startServer(t, (req, res) => {
    if (req.url === '/first') res.writeHead(302, { location: '/second' }).end()
    else res.end('must not be reached')
  })
  const resolver = recordingLookup({ 'rebind.example.com': (nth) => (nth === 0 ? ['127.0.0.1'] : ['127.0.0.1', '169.254.169.254']) })
  const fetcher = fetcherFor(t, { lookup: resolver.lookup, policy: createAddressPolicy({ allow: ['127.0.0.1/32'] }) })

  t.match(await caught(fetcher.fetch(server.urlFor('rebind.example.com', '/first'))), { code: 'NIMA_URL_BLOCKED' })
  t.same(resolver.calls, ['rebind.example.com', 'rebind.example.com'], 'one lookup per hop')
  t.same(server.requests.map((r) => r.url), ['/first'])
})

t.test('a redirect from an allowed server into a refused address is refused', async (t) => {
  const internal = await startServer(t, (_req, res) => res.end('internal secret'))
  const targets: Record<string, string> = {
    '/to-literal': internal.url('/admin'),
    '/to-metadata': 'http://169.254.169.254/latest/meta-data/iam/',
    '/to-name': `http://evil.example.com:${internal.port}/`,
    '/to-mapped': `http://[::ffff:127.0.0.1]:${internal.port}/`,
  }
  const front = await startServer(t, (req, res) => res.writeHead(302, { location: targets[req.url!] }).end())
  const probe = probeConnects(t)
  const resolver = recordingLookup({ 'front.example.com': ['127.0.0.1'], 'evil.example.com': ['127.0.0.1'] })
  // Only the name front.example.com is allowed; its redirects are checked on their own.
  const fetcher = fetcherFor(t, { lookup: resolver.lookup, policy: createAddressPolicy({ allow: ['front.example.com'] }) })

  for (const path of Object.keys(targets)) {
    t.match(await caught(fetcher.fetch(front.urlFor('front.example.com', path))), { code: 'NIMA_URL_BLOCKED' }, path)
  }
  t.equal(internal.connections, 0, 'the refused target saw no connection')
  t.ok(probe.attempts.every((address) => address === '127.0.0.1'))
  t.equal(front.requests.length, 4)
})

t.test('a redirect to a non-http scheme or with credentials is refused', async (t) => {
  const targets: Record<string, string> = {
    '/file': 'file:///etc/passwd',
    '/ftp': 'ftp://127.0.0.1/x',
    '/creds': 'http://admin:hunter2@127.0.0.1/',
  }
  const server = await startServer(t, (req, res) => res.writeHead(301, { location: targets[req.url!] }).end())
  const fetcher = fetcherFor(t, { policy: createAddressPolicy({ allow: ['127.0.0.1'] }) })
  t.match(await caught(fetcher.fetch(server.url('/file'))), { code: 'NIMA_URL_INVALID', message: /redirect target has the unsupported scheme "file:"/ })
  t.match(await caught(fetcher.fetch(server.url('/ftp'))), { code: 'NIMA_URL_INVALID', message: /"ftp:"/ })
  const err = await caught(fetcher.fetch(server.url('/creds')))
  t.match(err, { code: 'NIMA_URL_INVALID', message: /must not contain credentials/ })
  t.notMatch(err.message, /hunter2/)
})

t.test('only http and https URLs are accepted', async (t) => {
  const probe = probeConnects(t)
  const fetcher = fetcherFor(t)
  for (const url of ['file:///etc/passwd', 'ftp://example.com/a.jpg', 'data:image/png;base64,iVBORw0KGgo=', 'javascript:alert(1)', 'gopher://127.0.0.1:6379/_INFO', 'ws://example.com/']) {
    t.match(await caught(fetcher.fetch(url)), { code: 'NIMA_URL_INVALID', statusCode: 400, message: /unsupported scheme/ }, url)
  }
  for (const url of ['not a url', '', '/relative/path.jpg', 'http://', `http://example.com/${'a'.repeat(9000)}`]) {
    t.match(await caught(fetcher.fetch(url)), { code: 'NIMA_URL_INVALID' }, JSON.stringify(url.slice(0, 40)))
  }
  t.same(probe.attempts, [])
})

t.test('credentials in the URL are refused, and not echoed', async (t) => {
  const server = await startServer(t, (_req, res) => res.end('x'))
  const fetcher = fetcherFor(t, { policy: createAddressPolicy({ allow: ['127.0.0.1'] }) })
  for (const url of [`http://user:s3cret@127.0.0.1:${server.port}/`, `http://user@127.0.0.1:${server.port}/`, `http://:s3cret@127.0.0.1:${server.port}/`]) {
    const err = await caught(fetcher.fetch(url))
    t.match(err, { code: 'NIMA_URL_INVALID', message: 'The image URL must not contain credentials' })
  }
  t.equal(server.connections, 0)
})

t.test('redirect loops and long chains end in NIMA_TOO_MANY_REDIRECTS', async (t) => {
  const server = await startServer(t, (req, res) => {
    if (req.url === '/loop') res.writeHead(302, { location: '/loop' }).end()
    else res.writeHead(301, { location: `/hop${Number(req.url!.slice(4)) + 1}` }).end()
  })
  const policy = createAddressPolicy({ allow: ['127.0.0.1'] })
  const fetcher = fetcherFor(t, { policy, maxRedirects: 3 })

  const err = await caught(fetcher.fetch(server.url('/loop?token=abc')))
  t.match(err, { code: 'NIMA_TOO_MANY_REDIRECTS', statusCode: 502, message: /redirected more than 3 times/ })
  t.notMatch(err.message, /token/, 'no query string in the message')
  t.equal(server.requests.length, 4, 'the first request and 3 redirects')

  t.match(await caught(fetcher.fetch(server.url('/hop0'))), { code: 'NIMA_TOO_MANY_REDIRECTS' })
  t.equal(server.requests.length, 8)

  const strict = fetcherFor(t, { policy, maxRedirects: 0 })
  t.match(await caught(strict.fetch(server.url('/hop0'))), { code: 'NIMA_TOO_MANY_REDIRECTS' })
  t.equal(server.requests.length, 9)
})
