import t from 'tap'
import { createLimiter } from '../../src/util/limiter.js'

/** A task that runs until released, recording when it started. */
function gate(log: string[], name: string) {
  let open!: () => void
  const done = new Promise<void>((resolve) => (open = resolve))
  return { fn: async () => (log.push(name), done), open }
}
const tick = () => new Promise<void>((resolve) => setImmediate(resolve))

t.test('weighted tasks: the running ones never weigh more than the limit together', async (t) => {
  const l = createLimiter(100)
  const log: string[] = []
  const a = gate(log, 'a')
  const b = gate(log, 'b')
  const c = gate(log, 'c')
  const ra = l.run(a.fn, undefined, 60)
  const rb = l.run(b.fn, undefined, 50)
  const rc = l.run(c.fn, undefined, 40)
  await tick()
  t.same(log, ['a'], 'b (50) does not fit beside a (60)')
  t.same({ used: l.used, active: l.active, pending: l.pending }, { used: 60, active: 1, pending: 2 })
  a.open()
  await ra
  await tick()
  t.same(log, ['a', 'b', 'c'], 'a finished: b and c (90) start together, in order')
  t.equal(l.used, 90)
  b.open()
  c.open()
  await Promise.all([rb, rc])
  t.same({ used: l.used, active: l.active, pending: l.pending }, { used: 0, active: 0, pending: 0 })
})

t.test('arrival order: a light newcomer waits behind a heavy head instead of overtaking it', async (t) => {
  const l = createLimiter(100)
  const log: string[] = []
  const a = gate(log, 'a')
  const heavy = gate(log, 'heavy')
  const light = gate(log, 'light')
  const ra = l.run(a.fn, undefined, 30)
  const rh = l.run(heavy.fn, undefined, 90)
  const rl = l.run(light.fn, undefined, 10)
  await tick()
  t.same(log, ['a'], 'light (10) would fit beside a, but heavy came first')
  a.open()
  await ra
  await tick()
  t.same(log, ['a', 'heavy', 'light'])
  heavy.open()
  light.open()
  await Promise.all([rh, rl])
})

t.test('a heavy head that gives up lets the lighter waiters behind it start', async (t) => {
  const l = createLimiter(100)
  const log: string[] = []
  const a = gate(log, 'a')
  const light = gate(log, 'light')
  const ra = l.run(a.fn, undefined, 50)
  const ac = new AbortController()
  const rh = l.run(async () => log.push('heavy'), ac.signal, 80)
  const rl = l.run(light.fn, undefined, 40)
  await tick()
  t.same(log, ['a'])
  const reason = new Error('client gone')
  ac.abort(reason)
  t.equal(await rh.catch((e: unknown) => e), reason, 'rejects with the signal reason, never ran')
  await tick()
  t.same(log, ['a', 'light'])
  t.equal(l.used, 90)
  a.open()
  light.open()
  await Promise.all([ra, rl])
  t.equal(l.used, 0)
})

t.test('a cost outside 1..limit is refused naming the rule; cost defaults to 1', async (t) => {
  const l = createLimiter(10)
  for (const bad of [0, 11, 1.5, Number.NaN]) {
    await t.rejects(l.run(() => 1, undefined, bad), { name: 'RangeError', message: /cost must be an integer in 1\.\.10 \(the limit\), got/ })
  }
  t.equal(await l.run(() => 7), 7)
  t.equal(l.used, 0)
})

t.test('onIdle fires when the last task ends with nobody waiting, not while a waiter takes over', async (t) => {
  let idle = 0
  const l = createLimiter(10, () => (idle += 1))
  const log: string[] = []
  const a = gate(log, 'a')
  const b = gate(log, 'b')
  const ra = l.run(a.fn, undefined, 10)
  const rb = l.run(b.fn, undefined, 10)
  a.open()
  await ra
  await tick()
  t.equal(idle, 0)
  b.open()
  await rb
  t.equal(idle, 1)
})
