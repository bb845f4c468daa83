import { getEventListeners } from 'node:events'
import t from 'tap'
import { createBatcher } from '../../src/inference/batcher.js'
import { isNimaError } from '../../src/errors.js'

/** A batcher whose batches wait for `release()`, recording what each one ran. */
function gated(options: { maxBatchSize?: number; maxWaitMs?: number; maxQueue?: number } = {}) {
  const batches: number[][] = []
  let releases: (() => void)[] = []
  const b = createBatcher<number, number>({
    maxBatchSize: options.maxBatchSize ?? 4,
    maxWaitMs: options.maxWaitMs ?? 0,
    maxQueue: options.maxQueue ?? 100,
    run: async (xs) => {
      batches.push(xs)
      await new Promise<void>((r) => releases.push(r))
      return xs.map((x) => x * 10)
    },
  })
  const release = () => {
    const rs = releases
    releases = []
    for (const r of rs) r()
  }
  return { b, batches, release }
}

const abortListeners = (signal: AbortSignal) => getEventListeners(signal, 'abort').length

t.test('aborted while queued: rejected as its batch forms, never run, its place taken by the next item', async (t) => {
  const { b, batches, release } = gated({ maxBatchSize: 2 })
  const running = b.submit(1) // starts a batch at once (maxWaitMs 0) and holds it
  const ac = new AbortController()
  const dropped = b.submit(2, ac.signal)
  const keep = b.submit(3)
  const keep2 = b.submit(4)
  t.equal(b.queueDepth, 3)
  t.equal(abortListeners(ac.signal), 0, 'no listener is ever added: the signal is read, not watched')

  const reason = new Error('client left')
  ac.abort(reason)
  release()
  t.equal(await running, 10)
  t.equal(await dropped.catch((e: unknown) => e), reason, 'rejected with the signal reason')
  await new Promise((r) => setImmediate(r))
  release()
  t.same(await Promise.all([keep, keep2]), [30, 40])
  t.same(batches, [[1], [3, 4]], 'the dropped item never ran and took no place in a batch')
  await b.drain()
  t.equal(b.queueDepth + b.inFlight, 0)
})

t.test('abort after the batch started: the item finishes normally', async (t) => {
  const { b, release } = gated()
  const ac = new AbortController()
  const p = b.submit(7, ac.signal)
  t.equal(b.inFlight, 1)
  ac.abort(new Error('too late'))
  release()
  t.equal(await p, 70)
  t.equal(b.queueDepth + b.inFlight, 0)
})

t.test('a pre-aborted signal rejects at once, queueing nothing', async (t) => {
  const { b, batches } = gated({ maxQueue: 1 })
  const reason = new Error('already gone')
  const err = await b.submit(1, AbortSignal.abort(reason)).catch((e: unknown) => e)
  t.equal(err, reason)
  t.equal(b.queueDepth + b.inFlight, 0)
  t.same(batches, [])
})

t.test('a pre-aborted signal wins over a full queue', async (t) => {
  const { b, release } = gated({ maxBatchSize: 1, maxQueue: 1 })
  const running = b.submit(0)
  const queued = b.submit(1)
  const full = await b.submit(2).catch((e: unknown) => e)
  t.ok(isNimaError(full) && full.code === 'NIMA_OVERLOADED')
  const reason = new Error('gone')
  t.equal(await b.submit(3, AbortSignal.abort(reason)).catch((e: unknown) => e), reason)
  release()
  await running
  await new Promise((r) => setImmediate(r))
  release()
  t.equal(await queued, 10)
})

t.test('every waiting item aborted: the window ends with no batch, and drain resolves', async (t) => {
  let runs = 0
  const b = createBatcher<number, number>({
    maxBatchSize: 8,
    maxWaitMs: 20,
    maxQueue: 10,
    run: async (xs) => {
      runs++
      return xs
    },
  })
  const ac = new AbortController()
  const p = b.submit(1, ac.signal).catch((e: unknown) => e)
  const drained = b.drain()
  ac.abort()
  t.equal(((await p) as Error).name, 'AbortError', 'the default reason')
  await drained
  t.equal(b.queueDepth, 0)
  t.equal(runs, 0, 'no batch ran for the dropped item')
})

t.test('many items sharing one signal: all waiting ones are dropped, the running one finishes', async (t) => {
  const { b, batches, release } = gated({ maxBatchSize: 2 })
  const ac = new AbortController()
  const running = b.submit(0, ac.signal)
  const waiting = [1, 2, 3, 4].map((x) => b.submit(x, ac.signal).catch((e: unknown) => e))
  const other = b.submit(5)
  ac.abort('gone')
  release()
  t.equal(await running, 0, 'the running item finished')
  t.same(await Promise.all(waiting), ['gone', 'gone', 'gone', 'gone'])
  await new Promise((r) => setImmediate(r))
  release()
  t.equal(await other, 50)
  t.same(batches, [[0], [5]])
  t.equal(abortListeners(ac.signal), 0)
})
