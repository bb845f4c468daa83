import t from 'tap'
import { ERROR_TABLE, errorCodes, type ErrorCode } from '../../src/errors.js'
import { rawExchange } from '../helpers/raw-http.js'
import { startTestService } from '../helpers/service.js'

/**
 * Requests that fail in Node's HTTP parser or before fastify routes them still get the
 * documented `{error: {code, message, requestId}}` with a stable code, sent as raw bytes
 * on a socket since no HTTP client would send them.
 */
const BODY_TIMEOUT_MS = 600
const svc = await startTestService({ BODY_TIMEOUT_MS })
t.teardown(() => svc.server.shutdown())

const host = 'Host: 127.0.0.1\r\n'
const cases: { name: string; send: string; status: number; code: ErrorCode; withinMs?: number }[] = [
  { name: 'invalid character in a chunk size', send: `POST /score HTTP/1.1\r\n${host}Content-Type: image/jpeg\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n`, status: 400, code: 'NIMA_MALFORMED_REQUEST' },
  { name: 'chunk size overflowing 64 bits', send: `POST /score HTTP/1.1\r\n${host}Content-Type: image/jpeg\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\n`, status: 400, code: 'NIMA_MALFORMED_REQUEST' },
  { name: 'Content-Length and Transfer-Encoding together', send: `POST /score HTTP/1.1\r\n${host}Content-Type: image/jpeg\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`, status: 400, code: 'NIMA_MALFORMED_REQUEST' },
  { name: 'two different Content-Lengths', send: `POST /score HTTP/1.1\r\n${host}Content-Type: image/jpeg\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nabcdef`, status: 400, code: 'NIMA_MALFORMED_REQUEST' },
  { name: 'Content-Length not a number', send: `POST /score HTTP/1.1\r\n${host}Content-Type: image/jpeg\r\nContent-Length: abc\r\n\r\n`, status: 400, code: 'NIMA_MALFORMED_REQUEST' },
  { name: 'unknown method', send: `FOO /score HTTP/1.1\r\n${host}\r\n`, status: 400, code: 'NIMA_MALFORMED_REQUEST' },
  { name: 'space in a header name', send: `GET /healthz HTTP/1.1\r\n${host}Bad Header: x\r\n\r\n`, status: 400, code: 'NIMA_MALFORMED_REQUEST' },
  { name: 'TLS handshake on the plain-HTTP port', send: '\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03' + 'a'.repeat(64), status: 400, code: 'NIMA_MALFORMED_REQUEST' },
  { name: '20 KB of headers (over 16 KiB)', send: `GET /healthz HTTP/1.1\r\n${host}X-Big: ${'a'.repeat(20_000)}\r\n\r\n`, status: 431, code: 'NIMA_HEADERS_TOO_LARGE' },
  { name: 'HTTP/1.1 without Host', send: 'GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n', status: 400, code: 'NIMA_MALFORMED_REQUEST' },
  { name: 'bad percent-encoding in the path', send: `GET /score/%zz HTTP/1.1\r\n${host}Connection: close\r\n\r\n`, status: 400, code: 'NIMA_MALFORMED_REQUEST' },
  { name: 'Expect other than 100-continue', send: `POST /score HTTP/1.1\r\n${host}Content-Type: image/jpeg\r\nContent-Length: 4\r\nExpect: 200-ok\r\n\r\n`, status: 417, code: 'NIMA_EXPECTATION_FAILED' },
  { name: 'method fastify does not route', send: `PROPFIND /score HTTP/1.1\r\n${host}Connection: close\r\n\r\n`, status: 404, code: 'NIMA_NOT_FOUND' },
  { name: 'headers never finished (slow loris)', send: `POST /score HTTP/1.1\r\n${host}Content-Type: ima`, status: 408, code: 'NIMA_REQUEST_TIMEOUT', withinMs: BODY_TIMEOUT_MS + 1000 },
  { name: 'body never sent', send: `POST /score HTTP/1.1\r\n${host}Content-Type: image/jpeg\r\nContent-Length: 1000\r\n\r\n`, status: 408, code: 'NIMA_REQUEST_TIMEOUT', withinMs: BODY_TIMEOUT_MS + 1000 },
]

t.test('every parser-level refusal is JSON with a documented code and a request id', async (t) => {
  const answers = await Promise.all(cases.map((c) => rawExchange(svc.url, c.send).answer))
  for (const [i, c] of cases.entries()) {
    const a = answers[i]!
    t.test(c.name, async (t) => {
      t.equal(a.status, c.status, 'status')
      t.match(a.headers['content-type'] ?? '', /^application\/json/, 'JSON')
      let body: { error?: { code?: string; message?: string; requestId?: string } } = {}
      t.doesNotThrow(() => (body = JSON.parse(a.body)), `body parses: ${a.body.slice(0, 120)}`)
      t.equal(body.error?.code, c.code, 'code')
      t.ok(errorCodes.includes(c.code) && ERROR_TABLE[c.code].status === c.status, 'the code is in the table with this status')
      t.ok(body.error?.message, 'a message')
      t.match(body.error?.requestId ?? '', /^[\w.:-]{1,128}$/, 'a request id')
      t.equal(a.headers['x-request-id'], body.error?.requestId, 'the same id in x-request-id')
      if (c.withinMs) {
        t.ok(a.ms >= BODY_TIMEOUT_MS - 50, `not before BODY_TIMEOUT_MS (${a.ms.toFixed(0)} ms)`)
        t.ok(a.ms <= c.withinMs, `within ${c.withinMs} ms (${a.ms.toFixed(0)} ms)`)
      }
    })
  }
})

t.test("a caller's x-request-id comes back in an expectation refusal", async (t) => {
  const a = await rawExchange(svc.url, `GET /healthz HTTP/1.1\r\n${host}Expect: nope\r\nX-Request-Id: trace-42\r\n\r\n`).answer
  t.equal(a.status, 417)
  t.equal(JSON.parse(a.body).error.requestId, 'trace-42')
})

t.test('parser-level refusals are counted by code, and the service stays ready', async (t) => {
  const text = await (await fetch(`${svc.url}/metrics`)).text()
  for (const code of ['NIMA_MALFORMED_REQUEST', 'NIMA_HEADERS_TOO_LARGE', 'NIMA_EXPECTATION_FAILED', 'NIMA_REQUEST_TIMEOUT']) {
    t.match(text, new RegExp(`^nima_errors_total\\{code="${code}"\\} [1-9]`, 'm'), `${code} counted`)
  }
  t.equal((await fetch(`${svc.url}/readyz`)).status, 200)
})
