import t from 'tap'
import { createBatcher } from '../../src/inference/batcher.js'
import { isNimaError } from '../../src/errors.js'

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

t.test('items arriving within the window run as one batch', async (t) => {
  const batches: number[][] = []
  const b = createBatcher<number, number>({
    maxBatchSize: 8,
    maxWaitMs: 20,
    maxQueue: 100,
    run: async (xs) => {
      batches.push(xs)
      return xs.map((x) => x * 2)
    },
  })
  const out = await Promise.all([b.submit(1), b.submit(2), b.submit(3)])
  t.same(out, [2, 4, 6])
  t.same(batches, [[1, 2, 3]])
})

t.test('a full batch runs at once without waiting for the window', async (t) => {
  const b = createBatcher<number, number>({ maxBatchSize: 2, maxWaitMs: 10_000, maxQueue: 100, run: async (xs) => xs })
  const started = performance.now()
  t.same(await Promise.all([b.submit(1), b.submit(2)]), [1, 2])
  t.ok(performance.now() - started < 1000, 'did not wait for the 10 s window')
})

t.test('a lone item waits no longer than maxWaitMs', async (t) => {
  const b = createBatcher<number, number>({ maxBatchSize: 64, maxWaitMs: 30, maxQueue: 100, run: async (xs) => xs })
  const started = performance.now()
  await b.submit(1)
  const waited = performance.now() - started
  t.ok(waited >= 25 && waited < 500, `waited ${waited.toFixed(1)} ms`)
})

t.test('items queued during a run form the next batch, capped at maxBatchSize', async (t) => {
  const batches: number[][] = []
  const b = createBatcher<number, number>({
    maxBatchSize: 3,
    maxWaitMs: 0,
    maxQueue: 100,
    run: async (xs) => {
      batches.push(xs)
      await sleep(20)
      return xs
    },
  })
  const all = [b.submit(0)]
  await sleep(5)
  for (let i = 1; i <= 5; i++) all.push(b.submit(i))
  t.same(await Promise.all(all), [0, 1, 2, 3, 4, 5])
  t.same(batches, [[0], [1, 2, 3], [4, 5]])
})

t.test('a failing batch rejects each of its items, and the next batch still runs', async (t) => {
  let calls = 0
  const b = createBatcher<number, number>({
    maxBatchSize: 2,
    maxWaitMs: 0,
    maxQueue: 100,
    run: async (xs) => {
      if (calls++ === 0) throw new Error('boom')
      return xs
    },
  })
  await t.rejects(b.submit(1), /boom/)
  t.equal(await b.submit(2), 2)
})

t.test('a full queue refuses at once with NIMA_OVERLOADED and Retry-After', async (t) => {
  let release!: () => void
  const gate = new Promise<void>((r) => (release = r))
  const b = createBatcher<number, number>({
    maxBatchSize: 1,
    maxWaitMs: 0,
    maxQueue: 2,
    run: async (xs) => {
      await gate
      return xs
    },
  })
  const running = b.submit(0)
  const queued = [b.submit(1), b.submit(2)]
  t.equal(b.inFlight, 1)
  t.equal(b.queueDepth, 2)
  const err = await b.submit(3).catch((e: unknown) => e)
  t.ok(isNimaError(err) && err.code === 'NIMA_OVERLOADED' && err.headers['retry-after'] === '1')
  release()
  t.same(await Promise.all([running, ...queued]), [0, 1, 2])
  await b.drain()
  t.equal(b.queueDepth + b.inFlight, 0)
})
