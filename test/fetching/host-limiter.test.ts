import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { createHostLimiter } from '../../src/fetching/host-limiter.js'

/** A task that runs until `finish()` is called, recording when it started. */
function gate<T = void>() {
  let finish!: (value: T) => void
  let fail!: (err: unknown) => void
  const done = new Promise<T>((resolve, reject) => {
    finish = resolve
    fail = reject
  })
  return { done, finish, fail }
}

t.test('never runs more than maxPerHost tasks of one host at once', async (t) => {
  const limiter = createHostLimiter(3)
  let running = 0
  let peak = 0
  const task = async (): Promise<void> => {
    running += 1
    peak = Math.max(peak, running)
    await sleep(Math.random() * 5)
    running -= 1
  }
  await Promise.all(Array.from({ length: 50 }, () => limiter.run('cdn.example.com', task)))
  t.equal(peak, 3)
  t.equal(limiter.hosts, 0, 'idle hosts are forgotten')
})

t.test('waiting tasks start in arrival order (FIFO), and newcomers cannot overtake', async (t) => {
  const limiter = createHostLimiter(1)
  const started: number[] = []
  const gates = Array.from({ length: 5 }, () => gate())
  const runs = gates.map((g, i) =>
    limiter.run('h', () => {
      started.push(i)
      return g.done
    }),
  )
  t.same(started, [0])
  t.equal(limiter.active('h'), 1)
  t.equal(limiter.pending('h'), 4)

  gates[0]!.finish()
  await runs[0]
  // A task submitted now queues behind 2, 3 and 4 even though 1 has just started.
  const late = gate()
  const lateRun = limiter.run('h', () => {
    started.push(99)
    return late.done
  })
  for (let i = 1; i < 5; i++) {
    await sleep(1)
    t.same(started.at(-1), i)
    gates[i]!.finish()
    await runs[i]
  }
  late.finish()
  await lateRun
  t.same(started, [0, 1, 2, 3, 4, 99])
})

t.test('hosts are independent, and keys are case-insensitive', async (t) => {
  const limiter = createHostLimiter(1)
  const a = gate()
  const started: string[] = []
  const runA = limiter.run('A.example.com', () => {
    started.push('a')
    return a.done
  })
  const runA2 = limiter.run('a.EXAMPLE.com', () => {
    started.push('a2')
  })
  const runB = limiter.run('b.example.com', () => {
    started.push('b')
  })
  await runB
  t.same(started, ['a', 'b'], 'b did not wait for a')
  t.equal(limiter.pending('a.example.com'), 1)
  a.finish()
  await Promise.all([runA, runA2])
  t.same(started, ['a', 'b', 'a2'])
})

t.test('results and errors pass through, and a failing task frees its slot', async (t) => {
  const limiter = createHostLimiter(1)
  await t.rejects(limiter.run('h', () => Promise.reject(new Error('boom'))), { message: 'boom' })
  await t.rejects(
    limiter.run('h', () => {
      throw new Error('sync boom')
    }),
    { message: 'sync boom' },
  )
  t.equal(await limiter.run('h', () => 42), 42)
  t.equal(await limiter.run('h', async () => 'async'), 'async')
  t.equal(limiter.hosts, 0)
})

t.test('an AbortSignal releases a waiting task without running it', async (t) => {
  const limiter = createHostLimiter(1)
  const first = gate()
  const started: string[] = []
  const runFirst = limiter.run('h', () => {
    started.push('first')
    return first.done
  })
  const controller = new AbortController()
  const reason = new Error('caller gave up')
  const runAborted = limiter.run('h', () => {
    started.push('aborted')
  }, controller.signal)
  const runThird = limiter.run('h', () => {
    started.push('third')
  })
  t.equal(limiter.pending('h'), 2)

  controller.abort(reason)
  await t.rejects(runAborted, reason)
  t.equal(limiter.pending('h'), 1, 'it left the queue at once')

  first.finish()
  await Promise.all([runFirst, runThird])
  t.same(started, ['first', 'third'])
  t.equal(limiter.hosts, 0)
})

t.test('an already aborted signal rejects at once; an abort after start is the task\'s business', async (t) => {
  const limiter = createHostLimiter(2)
  const reason = new Error('late')
  let ran = false
  await t.rejects(limiter.run('h', () => {
    ran = true
  }, AbortSignal.abort(reason)), reason)
  t.equal(ran, false)

  const controller = new AbortController()
  const task = gate<string>()
  const running = limiter.run('h', () => task.done, controller.signal)
  controller.abort()
  task.finish('finished anyway')
  t.equal(await running, 'finished anyway')
})

t.test('maxPerHost is validated', async (t) => {
  for (const bad of [0, -1, 1.5, Number.NaN, Infinity]) {
    t.throws(() => createHostLimiter(bad), { name: 'TypeError', message: /maxPerHost must be an integer ≥ 1/ }, String(bad))
  }
  t.equal(createHostLimiter(4).maxPerHost, 4)
})
