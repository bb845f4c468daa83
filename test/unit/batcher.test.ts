import FakeTimers from '@sinonjs/fake-timers'
import t, { type Test } from 'tap'
import { createBatcher } from '../../src/inference/batcher.js'
import { isNimaError } from '../../src/errors.js'

/**
 * The batch window runs on a fake clock: a test moves time itself, so what it asserts
 * about the window cannot depend on how loaded the machine is. Only setTimeout and
 * performance.now are faked; promises settle as usual.
 */
function fakeClock(t: Test): ReturnType<typeof FakeTimers.install> {
  const clock = FakeTimers.install({ toFake: ['setTimeout', 'clearTimeout', 'performance'] })
  t.teardown(() => clock.uninstall())
  return clock
}

/** Whether `p` has settled once pending promise callbacks have run (no timer moves). */
async function settled(p: Promise<unknown>): Promise<boolean> {
  let done = false
  void p.then(
    () => (done = true),
    () => (done = true),
  )
  for (let i = 0; i < 10; i++) await Promise.resolve()
  return done
}

t.test('items arriving within the window run as one batch, when the window closes', async (t) => {
  const clock = fakeClock(t)
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
  const first = b.submit(1)
  clock.tick(10)
  const out = Promise.all([first, b.submit(2), b.submit(3)])
  clock.tick(9)
  t.same(batches, [], 'nothing runs before the window closes (19 ms after the first item)')
  clock.tick(1)
  t.same(await out, [2, 4, 6])
  t.same(batches, [[1, 2, 3]], 'one batch, 20 ms after the first item')
})

t.test('a full batch runs at once without waiting for the window', async (t) => {
  fakeClock(t)
  const b = createBatcher<number, number>({ maxBatchSize: 2, maxWaitMs: 10_000, maxQueue: 100, run: async (xs) => xs })
  const both = Promise.all([b.submit(1), b.submit(2)])
  t.ok(await settled(both), 'done with the clock standing still')
  t.same(await both, [1, 2])
})

t.test('a lone item waits maxWaitMs, no longer', async (t) => {
  const clock = fakeClock(t)
  const b = createBatcher<number, number>({ maxBatchSize: 64, maxWaitMs: 30, maxQueue: 100, run: async (xs) => xs })
  const one = b.submit(1)
  clock.tick(29)
  t.notOk(await settled(one), 'still waiting at 29 ms')
  clock.tick(1)
  t.ok(await settled(one), 'ran at 30 ms')
  t.equal(await one, 1)
})

t.test('items queued during a run form the next batch, capped at maxBatchSize', async (t) => {
  const batches: number[][] = []
  const gates: (() => void)[] = []
  const b = createBatcher<number, number>({
    maxBatchSize: 3,
    maxWaitMs: 0,
    maxQueue: 100,
    run: async (xs) => {
      batches.push(xs)
      await new Promise<void>((r) => gates.push(r))
      return xs
    },
  })
  const all = [b.submit(0)]
  for (let i = 1; i <= 5; i++) all.push(b.submit(i))
  t.same(batches, [[0]], 'the first item runs alone; the others queue behind it')
  t.equal(b.queueDepth, 5)
  gates.shift()!()
  await settled(all[0]!)
  t.same(batches, [[0], [1, 2, 3]], 'the queue forms the next batch as the first ends, capped at 3')
  gates.shift()!()
  await settled(all[3]!)
  gates.shift()!()
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
