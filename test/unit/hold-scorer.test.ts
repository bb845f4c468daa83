import { Readable } from 'node:stream'
import Fastify from 'fastify'
import t from 'tap'
import { holdScorerFromHeaders, scoringRequest } from '../../src/http/request-lifecycle.js'
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
