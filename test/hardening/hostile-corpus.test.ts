import t from 'tap'
import { startTestService, startUpstream } from '../helpers/service.js'
import { mapPool } from '../../src/util/map-pool.js'
import { hostileCorpus } from './corpus.js'

/**
 * Every hostile input gets its documented answer within a bounded time, the process
 * stays up and healthy, and memory stays bounded.
 */
const PER_REQUEST_BOUND_MS = 10_000
// Decoder internals that must never reach a client (issue #12, item 6): library names,
// seek offsets, scanlines, internal buffers.
const DECODER_INTERNALS = /vips|libjpeg|libtiff|tiff2vips|libspng|libheif|seek|source:|scanline|buffer/i

// The upstream lives on 127.0.0.2 and only that address is allowlisted, so every other
// loopback form (127.0.0.1, localhost, ::1, mapped, decimal) must still be refused.
const svc = await startTestService({
  URL_ALLOWLIST: '127.0.0.2/32',
  BODY_LIMIT_BYTES: 2_000_000,
  URL_MAX_BYTES: 2_000_000,
  URL_HEADERS_TIMEOUT_MS: 500,
  URL_BODY_TIMEOUT_MS: 1500,
  MAX_INPUT_PIXELS: 40_000_000,
})
t.teardown(() => svc.server.shutdown())

const up = await startUpstream('127.0.0.2', (req, res) => {
  const url = new URL(req.url!, 'http://x')
  switch (url.pathname) {
    case '/redirect':
      return void res.writeHead(302, { location: url.searchParams.get('to')! }).end()
    case '/loop':
      return void res.writeHead(302, { location: '/loop' }).end()
    case '/hang':
      return // never answers
    case '/trickle': {
      res.writeHead(200, { 'content-type': 'image/jpeg' })
      const timer = setInterval(() => res.write(Buffer.from([0xff])), 200)
      res.on('close', () => clearInterval(timer))
      return
    }
    case '/endless': {
      res.writeHead(200, { 'content-type': 'image/jpeg' })
      const chunk = Buffer.alloc(64 * 1024, 0xab)
      const pump = () => {
        while (res.write(chunk)) {
          /* keep writing until backpressure */
        }
      }
      res.on('drain', pump)
      pump()
      return
    }
    case '/huge-length':
      res.writeHead(200, { 'content-type': 'image/jpeg', 'content-length': String(10 * 1024 ** 3) })
      return void res.write(Buffer.alloc(1000))
    case '/html':
      return void res.writeHead(200, { 'content-type': 'image/jpeg' }).end('<html><body>hello</body></html>')
    case '/error':
      return void res.writeHead(500).end('boom')
    case '/reset':
      return void req.socket.destroy()
    default:
      res.writeHead(404).end()
  }
})
t.teardown(up.close)

const corpus = hostileCorpus({ base: up.url })

t.test(`hostile corpus: ${corpus.length} inputs`, async (t) => {
  t.ok(corpus.length >= 100, `at least 100 cases (${corpus.length})`)
  global.gc?.()
  const rssBefore = process.memoryUsage().rss
  let slowest = { name: '', ms: 0 }
  const results = await mapPool(corpus, 4, async (c) => {
    const started = performance.now()
    let status = 0
    let code = 'ok'
    let error = ''
    let message = ''
    try {
      const res = await fetch(svc.url + c.path, { method: c.method ?? 'POST', headers: c.headers, body: c.body, signal: AbortSignal.timeout(PER_REQUEST_BOUND_MS + 5000) })
      status = res.status
      const text = await res.text()
      const body = JSON.parse(text)
      if (status !== 200) code = body?.error?.code ?? `no error code in ${text.slice(0, 100)}`
      message = body?.error?.message ?? ''
    } catch (err) {
      error = err instanceof Error ? err.message : String(err)
    }
    const ms = performance.now() - started
    if (ms > slowest.ms) slowest = { name: c.name, ms }
    return { c, status, code, error, message, ms }
  })
  for (const r of results) {
    const ok = r.c.expect.some(([s, code]) => s === r.status && code === r.code)
    t.ok(ok, `${r.c.name}: got ${r.status} ${r.code}${r.error ? ` (${r.error})` : ''}, expected ${r.c.expect.map((e) => e.join(' ')).join(' or ')}`)
    t.ok(r.ms < PER_REQUEST_BOUND_MS, `${r.c.name}: answered in ${r.ms.toFixed(0)} ms`)
    if (r.status === 422 || r.status === 413) t.notMatch(r.message, DECODER_INTERNALS, `${r.c.name}: message names no decoder internals ("${r.message}")`)
  }
  global.gc?.()
  const growthMb = (process.memoryUsage().rss - rssBefore) / 1e6
  t.comment(`slowest: ${slowest.name} ${slowest.ms.toFixed(0)} ms; RSS growth ${growthMb.toFixed(1)} MB`)
  t.ok(growthMb < 400, `RSS growth over the corpus stays bounded (${growthMb.toFixed(1)} MB)`)
  const ready = await fetch(svc.url + '/readyz')
  t.equal(ready.status, 200, 'still ready afterwards')
})
