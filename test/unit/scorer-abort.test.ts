import { availableParallelism } from 'node:os'
import type { FastifyBaseLogger } from 'fastify'
import { pino } from 'pino'
import sharp from 'sharp'
import t from 'tap'
import { loadConfig } from '../../src/config/load.js'
import { isNimaError } from '../../src/errors.js'
import { ClientGoneError, createRequestSignals, isClientGone } from '../../src/http/request-lifecycle.js'
import { deadlineError } from '../../src/errors.js'
import { loadScorer } from '../../src/scoring/load-scorer.js'
import type { NimaModel } from '../../src/scoring/nima-model.js'
import { pipelineImagesFor, Scorer } from '../../src/scoring/scorer.js'
import { testModelsDir } from '../helpers/models.js'

const config = loadConfig({}, { MODELS_DIR: await testModelsDir(), LOG_LEVEL: 'silent', BATCH_MAX_SIZE: 4 })
const loaded = await loadScorer(config, pino({ level: 'silent' }) as unknown as FastifyBaseLogger)
t.teardown(() => loaded.dispose())
const image = await sharp({ create: { width: 64, height: 48, channels: 3, background: '#406080' } }).jpeg().toBuffer()
const options = { defaultModels: ['aesthetic', 'technical'], defaultWeights: config.combinedWeights, maxInputPixels: config.MAX_INPUT_PIXELS }

// Each image's header is read (cost admission) before it asks for a decode slot; for a
// JPEG that is promise steps only, no I/O, so draining microtasks lets it reach the slot
// while the decode that holds the slot cannot have finished.
const headersRead = async () => {
  for (let i = 0; i < 10; i++) await Promise.resolve()
}

function scorerWith(decodeConcurrency?: number) {
  // What the service counts as abandoned: drops the scorer reports whose reason is a client gone.
  const drops: { stage: string; reason: unknown }[] = []
  const scorer = new Scorer(loaded.models, { ...options, ...(decodeConcurrency !== undefined ? { decodeConcurrency } : {}) }, { dropped: (stage, reason) => drops.push({ stage, reason }) })
  const abandoned = async (stage: string) => drops.filter((d) => d.stage === stage && isClientGone(d.reason)).length
  return { scorer, abandoned }
}

t.test('decodeConcurrency: defaults to the available parallelism, refuses nonsense naming the option', async (t) => {
  t.equal(scorerWith().scorer.decodes.limit, availableParallelism())
  t.equal(scorerWith(0).scorer.decodes.limit, availableParallelism())
  t.equal(scorerWith(3).scorer.decodes.limit, 3)
  for (const bad of [-1, 1.5, Number.NaN]) {
    t.throws(() => scorerWith(bad), { name: 'RangeError', message: /decodeConcurrency must be an integer ≥ 0 \(0 = os\.availableParallelism\(\)\), got/ })
  }
})

t.test('at most decodeConcurrency decodes at once; the others wait in order and still finish', async (t) => {
  const { scorer } = scorerWith(1)
  const models = scorer.resolveModels()
  const runs = [1, 2, 3].map(() => scorer.scoreBytes(image, models))
  await headersRead()
  t.same(scorer.decodes, { running: 1, waiting: 2, limit: 1 })
  const results = await Promise.all(runs)
  t.equal(results.length, 3)
  for (const r of results) t.ok(r.timings.decodeMs >= 0 && Number.isFinite(r.combined.score))
  t.same(scorer.decodes, { running: 0, waiting: 0, limit: 1 })
})

t.test('a client gone while its image waits for a decode slot: dropped there and counted at stage decode', async (t) => {
  const { scorer, abandoned } = scorerWith(1)
  const models = scorer.resolveModels()
  const first = scorer.scoreBytes(image, models)
  const client = new AbortController()
  const waiting = scorer.scoreBytes(image, models, undefined, client.signal)
  await headersRead()
  t.equal(scorer.decodes.waiting, 1)
  const reason = new ClientGoneError()
  client.abort(reason)
  t.equal(await waiting.catch((e: unknown) => e), reason)
  t.equal(scorer.decodes.waiting, 0)
  t.ok(Number.isFinite((await first).combined.score), 'the image decoding meanwhile is unaffected')
  t.equal(await abandoned('decode'), 1)
  t.equal(await abandoned('queue'), 0)
})

t.test('inspect (what /labels/images stores): a client gone while the decode waits for a slot is counted at stage decode too', async (t) => {
  const { scorer, abandoned } = scorerWith(1)
  const first = scorer.inspect(image)
  const client = new AbortController()
  const waiting = scorer.inspect(image, client.signal)
  await headersRead()
  t.equal(scorer.decodes.waiting, 1)
  const reason = new ClientGoneError()
  client.abort(reason)
  t.equal(await waiting.catch((e: unknown) => e), reason)
  t.equal((await first).width, 64, 'the image decoding meanwhile is unaffected')
  t.equal(await abandoned('decode'), 1)
  const late = await scorer.inspect(image, AbortSignal.abort(deadlineError())).catch((e: unknown) => e)
  t.ok(isNimaError(late) && late.code === 'NIMA_DEADLINE_EXCEEDED')
  t.equal(await abandoned('decode'), 1, 'a deadline is not a client going away')
})

t.test('an already aborted signal: nothing decoded; only a client-gone reason is counted', async (t) => {
  const { scorer, abandoned } = scorerWith(1)
  const models = scorer.resolveModels()
  const gone = await scorer.scoreBytes(image, models, undefined, AbortSignal.abort(new ClientGoneError())).catch((e: unknown) => e)
  t.ok(isClientGone(gone))
  const late = await scorer.scoreBytes(image, models, undefined, AbortSignal.abort(deadlineError())).catch((e: unknown) => e)
  t.ok(isNimaError(late) && late.code === 'NIMA_DEADLINE_EXCEEDED' && !isClientGone(late))
  t.equal(await abandoned('decode'), 1, 'the deadline is not a client going away')
  t.same(scorer.decodes, { running: 0, waiting: 0, limit: 1 })
})

t.test('request signals: deadline and client-gone reasons, the combined signal, dispose', async (t) => {
  let watching = 0
  const watch = (gone: () => void) => {
    watching++
    setTimeout(gone, 10)
    return () => watching--
  }
  const a = createRequestSignals(60_000, watch)
  t.equal(watching, 1)
  await new Promise((r) => setTimeout(r, 30))
  t.ok(a.clientGone.aborted && a.signal.aborted && !a.deadline.aborted)
  t.ok(isClientGone(a.signal.reason) && a.signal.reason.code === 'NIMA_CLIENT_GONE')
  a.dispose()
  a.dispose()
  t.equal(watching, 0, 'stopped watching the client, once')

  const b = createRequestSignals(10, () => () => {})
  await new Promise((r) => setTimeout(r, 40))
  t.ok(b.deadline.aborted && b.signal.aborted && !b.clientGone.aborted)
  t.ok(isNimaError(b.signal.reason) && b.signal.reason.code === 'NIMA_DEADLINE_EXCEEDED' && !isClientGone(b.signal.reason))
  t.equal(b.signal.reason.headers['retry-after'], '1')

  const c = createRequestSignals(10, () => () => {})
  c.dispose()
  await new Promise((r) => setTimeout(r, 40))
  t.notOk(c.signal.aborted, 'a disposed deadline never fires')
})

t.test('admission (ordinary photos, the inline lane): pipelineImages admitted at once, the rest wait as bytes in order (counted per model), QUEUE_MAX past that is 503', async (t) => {
  const drops: { stage: string; reason: unknown }[] = []
  const scorer = new Scorer(loaded.models, { ...options, decodeConcurrency: 2, decodeInlineMaxPixels: 2_000_000, pipelineImages: 1, maxWaiting: 2 }, { dropped: (stage, reason) => drops.push({ stage, reason }) })
  const [aesthetic, technical] = scorer.resolveModels() as [NimaModel, NimaModel]
  const first = scorer.scoreBytes(image, [aesthetic, technical])
  const second = scorer.scoreBytes(image, [aesthetic])
  const client = new AbortController()
  const third = scorer.scoreBytes(image, [aesthetic, technical], undefined, client.signal)
  await headersRead()
  t.same(scorer.decodes, { running: 1, waiting: 0, limit: 2 }, 'one admitted, although two decode slots are free')
  t.same([scorer.queueDepthOf(aesthetic), scorer.queueDepthOf(technical)], [2, 1], 'the waiting images count for the models they asked for')
  const refused = await scorer.scoreBytes(image, [aesthetic]).catch((e: unknown) => e)
  t.ok(isNimaError(refused) && refused.code === 'NIMA_OVERLOADED' && refused.headers['retry-after'] === '1', 'past maxWaiting: 503 at once')
  const reason = new ClientGoneError()
  client.abort(reason)
  t.equal(await third.catch((e: unknown) => e), reason)
  t.same([scorer.queueDepthOf(aesthetic), scorer.queueDepthOf(technical)], [1, 0], 'a waiter that leaves is no longer counted')
  t.equal(drops.filter((d) => d.stage === 'decode' && isClientGone(d.reason)).length, 1, 'and counts as abandoned before decoding')
  const [a, b] = await Promise.all([first, second])
  t.ok(Number.isFinite(a.combined.score) && Object.keys(b.scores).join() === 'aesthetic')
  t.same([scorer.queueDepthOf(aesthetic), scorer.queueDepthOf(technical)], [0, 0])
})

t.test('scoreTensor: the same admission as photos (waiting counted, QUEUE_MAX, a client gone dropped at stage queue), the same scores as scoreBytes', async (t) => {
  const drops: { stage: string; reason: unknown }[] = []
  const scorer = new Scorer(loaded.models, { ...options, decodeInlineMaxPixels: 2_000_000, pipelineImages: 1, maxWaiting: 1 }, { dropped: (stage, reason) => drops.push({ stage, reason }) })
  const [aesthetic] = scorer.resolveModels(['aesthetic']) as [NimaModel]
  const prepared = await scorer.prepareBytes(image, [aesthetic])
  const tensor = Float32Array.from(prepared.tensors.get(aesthetic.inputKey)!)
  const viaBytes = await scorer.scoreBytes(image, [aesthetic])

  const first = scorer.scoreTensor(tensor, aesthetic)
  const client = new AbortController()
  const second = scorer.scoreTensor(tensor, aesthetic, client.signal)
  t.equal(scorer.queueDepthOf(aesthetic), 2, "the first in the model's batcher queue, the second waiting for admission, both counted for the model")
  const refused = await scorer.scoreTensor(tensor, aesthetic).catch((e: unknown) => e)
  t.ok(isNimaError(refused) && refused.code === 'NIMA_OVERLOADED', 'past maxWaiting: 503 at once')
  const reason = new ClientGoneError()
  client.abort(reason)
  t.equal(await second.catch((e: unknown) => e), reason)
  t.same(drops.map((d) => d.stage), ['queue'], 'dropped before admission, counted at stage queue (nothing to decode)')
  const score = await first
  t.same(score.distribution, viaBytes.scores['aesthetic']!.distribution, 'the distribution scoreBytes gives for the image the tensor came from')
  t.equal(score.mean, viaBytes.scores['aesthetic']!.mean)
  await t.rejects(scorer.scoreTensor(tensor.subarray(1), aesthetic), { name: 'RangeError', message: /takes 150528 values per image, got 150527/ })
})

t.test('pipelineImagesFor: a batch running and one forming, at least a batch plus every decode slot', async (t) => {
  t.equal(pipelineImagesFor(4, 2), 8)
  t.equal(pipelineImagesFor(1, 2), 3)
  t.equal(pipelineImagesFor(32, 16), 64)
  t.equal(pipelineImagesFor(4, 16), 20)
})

t.test('tensors are reused across images, never while a model may still read one', async (t) => {
  // Distinct images scored at once through batches of 4: each must get the scores it gets alone.
  const photos = await Promise.all(
    Array.from({ length: 24 }, (_, i) =>
      sharp({ create: { width: 40 + i, height: 30 + ((i * 7) % 23), channels: 3, background: { r: (i * 37) % 256, g: (i * 91) % 256, b: (i * 53) % 256 } } })
        .jpeg()
        .toBuffer(),
    ),
  )
  const { scorer } = scorerWith(2)
  const models = scorer.resolveModels()
  const alone: Awaited<ReturnType<typeof scorer.scoreBytes>>[] = []
  for (const p of photos) alone.push(await scorer.scoreBytes(p, models))
  // One image's models dropped mid-way (its signal fires while it waits for its batch) must not free a tensor the other model still holds.
  const client = new AbortController()
  const together = photos.map((p, i) => scorer.scoreBytes(p, models, undefined, i === 5 ? client.signal : undefined))
  client.abort(new ClientGoneError())
  const results = await Promise.allSettled(together)
  results.forEach((r, i) => {
    if (i === 5) return
    t.equal(r.status, 'fulfilled', `image ${i} scored`)
    if (r.status === 'fulfilled') t.same(r.value.scores, alone[i]!.scores, `image ${i}: the scores it gets alone`)
  })
})
