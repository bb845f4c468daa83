/**
 * Issue #23, item 2: one body reader for every route that takes an image upload
 * (src/http/image-body.ts). The four upload routes answer the same fault with the same
 * code and message, and a fault found early in a body still being sent is answered with
 * its JSON error, not a reset connection: the reader drops the rest of the body first.
 * A raw node:http client on a real socket, so that a reset shows up as a socket error.
 */
import { request } from 'node:http'
import { join } from 'node:path'
import sharp from 'sharp'
import t, { type Test } from 'tap'
import { startTestService } from '../helpers/service.js'

const RANK_MAX_IMAGES = 2
// A body the server stops reading stalls until BODY_TIMEOUT_MS closes its connection: kept short.
const svc = await startTestService({ LABELS_DB: join(t.testdir(), 'labels.sqlite'), RANK_MAX_IMAGES, BODY_TIMEOUT_MS: 3000 })
t.teardown(() => svc.server.shutdown())

const ROUTES = ['/score', '/explain', '/rank', '/labels/images'] as const
const MiB = 1024 * 1024
const tiny = await sharp({ create: { width: 16, height: 16, channels: 3, background: '#4080c0' } }).png().toBuffer()
// Not an image: nothing reads it, which is the point. 4 MiB is far more than socket buffers hold.
const large = Buffer.alloc(4 * MiB, 0x5a)

type Part = { name: string; filename?: string; body: Buffer | string }
const BOUNDARY = 'body-reader-test'
function multipart(parts: Part[]): Buffer {
  const chunks: Buffer[] = []
  for (const p of parts) {
    const head = `--${BOUNDARY}\r\nContent-Disposition: form-data; name="${p.name}"${p.filename ? `; filename="${p.filename}"\r\nContent-Type: application/octet-stream` : ''}\r\n\r\n`
    chunks.push(Buffer.from(head), Buffer.isBuffer(p.body) ? p.body : Buffer.from(p.body), Buffer.from('\r\n'))
  }
  chunks.push(Buffer.from(`--${BOUNDARY}--\r\n`))
  return Buffer.concat(chunks)
}

interface Answer {
  status: number
  json: any
  /** Whether every byte of the body was written before the connection closed. */
  sent: boolean
  /** A socket error (ECONNRESET, EPIPE): a client loses the answer, or its upload. */
  error?: string
}

/**
 * Sends `body` in 64 KiB writes on a connection of its own, as a client uploading a large
 * file does, and settles once the connection is closed: with the answer, whether the whole
 * body went out, and the socket error if there was one. A server that stops reading the
 * body leaves the upload stuck until BODY_TIMEOUT_MS closes the connection under it.
 */
function send(path: string, body: Buffer, contentType: string): Promise<Answer> {
  const { port } = new URL(svc.url)
  return new Promise((resolve) => {
    const answer: Answer = { status: 0, json: undefined, sent: false }
    const req = request({ host: '127.0.0.1', port, path, method: 'POST', agent: false, headers: { 'content-type': contentType, 'content-length': body.length } })
    req.on('error', (err: NodeJS.ErrnoException) => void (answer.error ??= err.code ?? err.message))
    req.on('finish', () => void (answer.sent = true))
    req.on('response', (res) => {
      answer.status = res.statusCode ?? 0
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('error', (err: NodeJS.ErrnoException) => void (answer.error ??= err.code ?? err.message))
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8')
        try {
          answer.json = JSON.parse(text)
        } catch {
          answer.json = text
        }
      })
    })
    req.on('close', () => resolve(answer))
    const write = async () => {
      for (let at = 0; at < body.length && !req.destroyed; at += 64 * 1024) {
        if (!req.write(body.subarray(at, at + 64 * 1024))) await new Promise((r) => req.once('drain', r))
      }
      req.end()
    }
    void write().catch(() => {})
  })
}

async function onEveryRoute(parts: Part[] | ((route: string) => Part[])): Promise<Map<string, Answer>> {
  const answers = new Map<string, Answer>()
  // One at a time: the answers must not depend on the upload budget other requests hold.
  for (const route of ROUTES) answers.set(route, await send(route, multipart(typeof parts === 'function' ? parts(route) : parts), `multipart/form-data; boundary=${BOUNDARY}`))
  return answers
}

/** The same answer from every route; `same` picks what of the message must be the same (all of it by default). */
function sameEverywhere(t: Test, answers: Map<string, Answer>, status: number, code: string, same = (message: string) => message): void {
  for (const [route, a] of answers) {
    t.equal(a.error, undefined, `${route}: no socket error`)
    t.ok(a.sent, `${route}: the whole body was read`)
    t.equal(a.status, status, `${route}: ${status}`)
    t.equal(a.json?.error?.code, code, `${route}: ${code} (${a.json?.error?.message})`)
  }
  const messages = new Set([...answers.values()].map((a) => same(String(a.json?.error?.message))))
  t.equal(messages.size, 1, `one message for the four routes: ${[...messages].join(' | ')}`)
}

t.test('a bad first part before a large image: the JSON error, not a reset, with one message', async (t) => {
  const answers = await onEveryRoute([
    { name: 'photo', filename: 'a.png', body: tiny },
    { name: 'image', filename: 'b.png', body: large },
  ])
  sameEverywhere(t, answers, 400, 'NIMA_INVALID_REQUEST')
  t.match(answers.get('/score')?.json?.error?.message, /"photo"/, 'the message names the part')
})

t.test('a text field the route does not take, then an image: 400 with one message', async (t) => {
  const answers = await onEveryRoute([
    { name: 'note', body: 'hello' },
    { name: 'image', filename: 'b.png', body: large },
  ])
  // The message goes on to list the text fields the route takes, which differ.
  sameEverywhere(t, answers, 400, 'NIMA_INVALID_REQUEST', (m) => m.split(' and ')[0]!)
  t.match(answers.get('/rank')?.json?.error?.message, /"note"/, 'the message names the field')
})

t.test('no image part: NIMA_MISSING_IMAGE on every route, empty form or text fields only', async (t) => {
  sameEverywhere(t, await onEveryRoute([]), 400, 'NIMA_MISSING_IMAGE')
  sameEverywhere(t, await onEveryRoute([{ name: 'note', body: 'hello' }]), 400, 'NIMA_MISSING_IMAGE')
})

t.test('text/plain: 415 on every route', async (t) => {
  for (const route of ROUTES) {
    const a = await send(route, Buffer.from('not an image'), 'text/plain')
    t.equal(a.status, 415, `${route}: 415`)
    t.equal(a.json?.error?.code, 'NIMA_UNSUPPORTED_MEDIA_TYPE', route)
  }
})

t.test('one image too many, then a large part: /rank answers NIMA_TOO_MANY_IMAGES, not a reset', async (t) => {
  const parts = Array.from({ length: RANK_MAX_IMAGES + 1 }, (_, i) => ({ name: 'image', filename: `${i}.png`, body: tiny }))
  const a = await send('/rank', multipart([...parts, { name: 'image', filename: 'big.png', body: large }]), `multipart/form-data; boundary=${BOUNDARY}`)
  t.equal(a.error, undefined, 'no socket error')
  t.ok(a.sent, 'the whole body was read')
  t.equal(a.status, 400)
  t.match(a.json?.error, { code: 'NIMA_TOO_MANY_IMAGES', message: `${RANK_MAX_IMAGES + 1} images sent; RANK_MAX_IMAGES allows ${RANK_MAX_IMAGES}` })
})

t.test('the service still scores an upload afterwards', async (t) => {
  const a = await send('/score', multipart([{ name: 'image', filename: 'a.png', body: tiny }]), `multipart/form-data; boundary=${BOUNDARY}`)
  t.equal(a.status, 200, JSON.stringify(a.json?.error))
})
