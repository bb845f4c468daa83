import { connect, type AddressInfo } from 'node:net'
import { Readable } from 'node:stream'
import Fastify from 'fastify'
import t from 'tap'
import { holdScorerFromHeaders, scoringRequest } from '../../src/http/request-lifecycle.js'
import uploadBudget, { UploadBudget } from '../../src/http/upload-budget.js'
import { createMetrics } from '../../src/metrics/metrics.js'
import type { Scorer } from '../../src/scoring/scorer.js'
import { ServiceState } from '../../src/service-state.js'

/** A stand-in scorer: these routes only need to know which one they were lent. */
const scorer = { dispose: async () => {} } as unknown as Scorer

async function appWith(state: ServiceState) {
  const app = Fastify()
  app.addContentTypeParser('image/jpeg', { parseAs: 'buffer' }, (_req, body, done) => done(null, body))
  const seen: { inflight: number; draining: boolean }[] = []
  app.register(async (scope) => {
    scope.addHook('preParsing', holdScorerFromHeaders(state))
    scope.post('/score', async (request, reply) =>
      scoringRequest({ config: { REQUEST_DEADLINE_MS: 5000 }, state, metrics: createMetrics() }, request, reply, async () => {
        seen.push({ inflight: state.inflight, draining: state.draining })
        return reply.send({ ok: true })
      }),
    )
    scope.get('/v2/health/ready', async () => ({ inflight: state.inflight }))
  })
  await app.ready()
  return { app, seen }
}

t.test('a request with a body holds the scorer from its headers: served after draining began', async (t) => {
  const state = new ServiceState()
  state.setScorer(scorer)
  const { app, seen } = await appWith(state)
  t.teardown(() => app.close())
  // Draining begins between the two halves of the body, as SIGTERM would mid-upload.
  const drainMidBody = { drained: false }
  const res = await app.inject({
    method: 'POST',
    url: '/score',
    // What an HTTP client streaming its body declares (inject sets no length for a stream).
    headers: { 'content-type': 'image/jpeg', 'transfer-encoding': 'chunked' },
    payload: Readable.from(
      (async function* () {
      yield Buffer.from('first half ')
      state.startDraining()
      drainMidBody.drained = true
      yield Buffer.from('second half')
      })(),
    ),
  })
  t.ok(drainMidBody.drained, 'draining began while the body was arriving')
  t.equal(res.statusCode, 200, 'served, not refused')
  t.same(seen, [{ inflight: 1, draining: true }], 'counted once in flight, on the lease taken at its headers')
  t.equal(state.inflight, 0, 'released when its response closed')
})

t.test('after draining began, a new request with a body gets 503; a GET is never held', async (t) => {
  const state = new ServiceState()
  state.setScorer(scorer)
  const { app } = await appWith(state)
  t.teardown(() => app.close())
  const probe = await app.inject({ method: 'GET', url: '/v2/health/ready' })
  t.same(probe.json(), { inflight: 0 }, 'a GET beside the scoring routes is not counted in flight')
  state.startDraining()
  const late = await app.inject({ method: 'POST', url: '/score', headers: { 'content-type': 'image/jpeg' }, payload: Buffer.from('bytes') })
  t.equal(late.statusCode, 503)
  t.match(late.json(), { code: 'NIMA_NOT_READY' })
  t.equal(state.inflight, 0)
})

t.test('a pipelined request whose client leaves mid-body gives back its hold and its upload reservation', async (t) => {
  const state = new ServiceState()
  let disposed = 0
  state.setScorer({ dispose: async () => void disposed++ } as unknown as Scorer)
  const budget = new UploadBudget(1 << 20)
  const app = Fastify()
  await app.register(uploadBudget, { budget, bodyLimit: 1 << 16 })
  app.addContentTypeParser('image/jpeg', { parseAs: 'buffer' }, (_req, body, done) => done(null, body))
  let release!: () => void
  const first = new Promise<void>((resolve) => (release = resolve))
  let entered!: () => void
  const inFirst = new Promise<void>((resolve) => (entered = resolve))
  app.register(async (scope) => {
    scope.addHook('preParsing', holdScorerFromHeaders(state))
    scope.post('/score', async (request, reply) =>
      scoringRequest({ config: { REQUEST_DEADLINE_MS: 5000 }, state, metrics: createMetrics() }, request, reply, async () => {
        entered()
        await first
        return reply.send({ ok: true })
      }),
    )
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => app.close())
  const { port } = app.server.address() as AddressInfo
  const socket = connect(port, '127.0.0.1')
  socket.on('error', () => {})
  const post = (length: number) => `POST /score HTTP/1.1\r\nhost: x\r\ncontent-type: image/jpeg\r\ncontent-length: ${length}\r\n\r\n`
  socket.write(post(5) + 'first')
  await inFirst
  // The second request behind it: headers and half its body, then the client is gone.
  socket.write(post(1000) + 'x'.repeat(500))
  await until(() => state.inflight === 2)
  t.equal(budget.reserved, 1005, 'both bodies reserved')
  socket.destroy()
  // The second gives back what it held at once, though its response was never attached to
  // the socket; the first, still in its handler, keeps its lease until its work is done.
  await until(() => state.inflight === 1)
  t.equal(state.inflight, 1, 'the abandoned pipelined request is no longer in flight')
  const swapped = state.swapScorer({ dispose: async () => {} } as unknown as Scorer)
  await new Promise((r) => setTimeout(r, 50))
  t.equal(disposed, 0, 'a swap waits for the handler still running on the scorer')
  release()
  await swapped
  t.equal(disposed, 1, 'and disposes it once that handler is done: no lease left on it')
  await until(() => state.inflight === 0 && budget.reserved === 0)
  t.equal(state.inflight, 0, 'nothing left in flight')
  t.equal(budget.reserved, 0, 'no upload reservation left')
})

async function until(ok: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms
  while (!ok()) {
    if (Date.now() > end) throw new Error('timed out waiting')
    await new Promise((r) => setTimeout(r, 10))
  }
}
