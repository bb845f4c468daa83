/**
 * Hostile or broken upstreams: bodies over the limit (with and without Content-Length,
 * endless), slow-loris servers, DNS that hangs or fails, refused connections and
 * non-2xx answers. Timeouts are configured small so the file stays fast.
 */
import { setTimeout as sleep } from 'node:timers/promises'
import t, { type Test } from 'tap'
import { createAddressPolicy } from '../../src/fetching/address-policy.js'
import { createImageFetcher, type ImageFetcherOptions } from '../../src/fetching/fetch-image.js'
import { caught, closedPort, recordingLookup, startServer, type TestServer } from './helpers.js'

const policy = createAddressPolicy({ allow: ['127.0.0.1/32', 'images.intranet'] })

function fetcherFor(t: Test, options: ImageFetcherOptions = {}) {
  const fetcher = createImageFetcher({ policy, ...options })
  t.teardown(() => fetcher.close())
  return fetcher
}

/** Resolves when `server`'s next socket closes, or fails after `ms`. */
async function socketClosesWithin(server: TestServer, ms: number): Promise<boolean> {
  return Promise.race([server.nextSocketClose().then(() => true), sleep(ms).then(() => false)])
}

t.test('Content-Length over the limit is refused before reading, and the socket is closed', async (t) => {
  let finished = false
  const server = await startServer(t, (_req, res) => {
    res.writeHead(200, { 'content-length': String(10 * 1024 * 1024), 'content-type': 'image/jpeg' })
    res.write(Buffer.alloc(1024))
    res.on('finish', () => (finished = true))
    // …and never ends: only the client closing the socket ends this exchange.
  })
  const fetcher = fetcherFor(t, { maxBytes: 64 * 1024 })
  const closed = socketClosesWithin(server, 2000)

  const err = await caught(fetcher.fetch(server.url('/big.jpg?sig=1')))
  t.match(err, { code: 'NIMA_URL_TOO_LARGE', statusCode: 413, message: /larger than 65536 bytes/ })
  t.notMatch(err.message, /sig=/)
  t.equal(await closed, true, 'the server saw the socket closed')
  t.equal(finished, false, 'long before the declared body was sent')
})

t.test('a chunked body over the limit is cut while streaming', async (t) => {
  let written = 0
  const server = await startServer(t, (_req, res) => {
    res.writeHead(200) // no Content-Length: chunked
    const chunk = Buffer.alloc(16 * 1024, 1)
    // 4 × 16 KiB, then hold the response open.
    for (let i = 0; i < 4; i++) {
      res.write(chunk)
      written += chunk.length
    }
  })
  const fetcher = fetcherFor(t, { maxBytes: 40 * 1024 })
  const closed = socketClosesWithin(server, 2000)
  t.match(await caught(fetcher.fetch(server.url())), { code: 'NIMA_URL_TOO_LARGE' })
  t.equal(await closed, true, 'the server saw the socket closed')
  t.equal(written, 64 * 1024)
})

t.test('the limit is inclusive', async (t) => {
  const server = await startServer(t, (req, res) => {
    const size = Number(new URL(req.url!, 'http://x').searchParams.get('size'))
    if (req.url!.includes('chunked')) res.writeHead(200)
    else res.writeHead(200, { 'content-length': String(size) })
    res.end(Buffer.alloc(size, 7))
  })
  const fetcher = fetcherFor(t, { maxBytes: 1000 })
  t.equal((await fetcher.fetch(server.url('/?size=1000'))).bytes.length, 1000)
  t.equal((await fetcher.fetch(server.url('/chunked?size=1000'))).bytes.length, 1000)
  t.match(await caught(fetcher.fetch(server.url('/?size=1001'))), { code: 'NIMA_URL_TOO_LARGE' })
  t.match(await caught(fetcher.fetch(server.url('/chunked?size=1001'))), { code: 'NIMA_URL_TOO_LARGE' })
})

t.test('an endless body stops at the limit', async (t) => {
  let written = 0
  const server = await startServer(t, (_req, res) => {
    res.writeHead(200, { 'content-type': 'image/png' })
    const chunk = Buffer.alloc(64 * 1024, 2)
    const pump = (): void => {
      while (!res.destroyed) {
        written += chunk.length
        if (!res.write(chunk)) {
          res.once('drain', pump)
          return
        }
      }
    }
    pump()
  })
  const fetcher = fetcherFor(t, { maxBytes: 1024 * 1024 })
  const closed = socketClosesWithin(server, 2000)
  const started = performance.now()
  t.match(await caught(fetcher.fetch(server.url('/endless'))), { code: 'NIMA_URL_TOO_LARGE' })
  t.equal(await closed, true, 'the server saw the socket closed')
  t.ok(performance.now() - started < 2000, 'promptly')
  t.ok(written > 1024 * 1024 && written < 32 * 1024 * 1024, `the server could push only ${written} bytes`)
})

t.test('slow loris: headers that never come time out at headersTimeoutMs', async (t) => {
  const server = await startServer(t, () => {
    /* reads the request, never answers */
  })
  const fetcher = fetcherFor(t, { headersTimeoutMs: 300 })
  const started = performance.now()
  const err = await caught(fetcher.fetch(server.url('/stuck?k=v')))
  const elapsed = performance.now() - started
  t.match(err, { code: 'NIMA_UPSTREAM_TIMEOUT', statusCode: 504, message: /sent no response headers within 300 ms/ })
  t.notMatch(err.message, /k=v/)
  // undici checks headersTimeout on a ~0.5 s tick: expect 300 ms plus at most that.
  t.ok(elapsed >= 250 && elapsed < 1500, `timed out after ${Math.round(elapsed)} ms`)
})

t.test('slow loris: a trickling body times out at bodyTimeoutMs (whole body, not idle time)', async (t) => {
  const server = await startServer(t, (_req, res) => {
    res.writeHead(200, { 'content-length': '1000' })
    const timer = setInterval(() => res.write('x'), 40)
    res.on('close', () => clearInterval(timer))
  })
  const fetcher = fetcherFor(t, { bodyTimeoutMs: 400 })
  const closed = socketClosesWithin(server, 2000)
  const started = performance.now()
  const err = await caught(fetcher.fetch(server.url('/trickle')))
  const elapsed = performance.now() - started
  t.match(err, { code: 'NIMA_UPSTREAM_TIMEOUT', message: /did not arrive within 400 ms/ })
  t.ok(elapsed >= 350 && elapsed < 1500, `timed out after ${Math.round(elapsed)} ms`)
  t.equal(await closed, true, 'the server saw the socket closed')
})

t.test('a DNS lookup that hangs times out at connectTimeoutMs', async (t) => {
  const fetcher = fetcherFor(t, { connectTimeoutMs: 200, lookup: () => new Promise(() => {}) })
  const started = performance.now()
  const err = await caught(fetcher.fetch('http://images.intranet/a.jpg'))
  const elapsed = performance.now() - started
  t.match(err, { code: 'NIMA_UPSTREAM_TIMEOUT', message: 'Resolving "images.intranet" took longer than 200 ms' })
  t.ok(elapsed < 1000, `after ${Math.round(elapsed)} ms`)
})

t.test('DNS failures are upstream failures', async (t) => {
  const resolver = recordingLookup({ 'empty.example.com': [], 'garbage.example.com': ['not-an-ip'] })
  const fetcher = fetcherFor(t, { lookup: resolver.lookup })
  t.match(await caught(fetcher.fetch('http://nowhere.example.com/')), {
    code: 'NIMA_UPSTREAM_FAILED',
    statusCode: 502,
    message: 'Resolving "nowhere.example.com" failed (ENOTFOUND)',
  })
  t.match(await caught(fetcher.fetch('http://empty.example.com/')), { code: 'NIMA_UPSTREAM_FAILED', message: /returned no address/ })
  t.match(await caught(fetcher.fetch('http://garbage.example.com/')), { code: 'NIMA_UPSTREAM_FAILED', message: /not an IP address/ })

  const throwing = fetcherFor(t, {
    lookup: () => {
      throw new Error('sync failure')
    },
  })
  t.match(await caught(throwing.fetch('http://x.example.com/')), { code: 'NIMA_UPSTREAM_FAILED', message: 'Resolving "x.example.com" failed' })
})

t.test('connection refused is an upstream failure', async (t) => {
  const port = await closedPort()
  const fetcher = fetcherFor(t)
  const err = await caught(fetcher.fetch(`http://127.0.0.1:${port}/a.jpg`))
  t.match(err, { code: 'NIMA_UPSTREAM_FAILED', statusCode: 502, message: /failed \(ECONNREFUSED\)/ })
})

t.test('a refused first address falls back to the other family', async (t) => {
  const server = await startServer(t, (_req, res) => res.end('via ipv4'))
  // ::1 is refused (nothing listens there, or IPv6 is unavailable); 127.0.0.1 answers.
  const resolver = recordingLookup({ 'images.intranet': ['::1', '127.0.0.1'] })
  const fetcher = fetcherFor(t, { lookup: resolver.lookup })
  const image = await fetcher.fetch(server.urlFor('images.intranet'))
  t.equal(image.bytes.toString(), 'via ipv4')
  t.equal(image.remoteAddress, '127.0.0.1')
  t.same(resolver.calls, ['images.intranet'], 'still a single lookup')
})

t.test('non-2xx answers are upstream failures naming the status', async (t) => {
  const server = await startServer(t, (req, res) => {
    const status = Number(req.url!.slice(1, 4))
    res.writeHead(status, { 'content-type': 'text/html' }).end('<h1>nope</h1>')
  })
  const fetcher = fetcherFor(t)
  for (const status of [404, 500, 403, 300, 304]) {
    const err = await caught(fetcher.fetch(server.url(`/${status}?token=abc`)))
    t.match(err, { code: 'NIMA_UPSTREAM_FAILED', statusCode: 502, message: `http://127.0.0.1:${server.port}/${status} answered HTTP ${status}` }, String(status))
  }
})

t.test('a connection reset mid-body is an upstream failure', async (t) => {
  const server = await startServer(t, (_req, res) => {
    res.writeHead(200, { 'content-length': '1000' })
    res.write('partial', () => res.socket?.destroy())
  })
  const fetcher = fetcherFor(t)
  t.match(await caught(fetcher.fetch(server.url())), { code: 'NIMA_UPSTREAM_FAILED', message: /failed \(UND_ERR_SOCKET\)/ })
})

t.test('a 2xx without Content-Type or body is returned as is', async (t) => {
  const server = await startServer(t, (_req, res) => res.writeHead(204).end())
  const fetcher = fetcherFor(t)
  const image = await fetcher.fetch(server.url())
  t.equal(image.bytes.length, 0)
  t.equal(image.contentType, undefined)
})
