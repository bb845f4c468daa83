/**
 * Sessions on worker threads (src/inference/threaded-session.ts): the same numbers as a
 * session on the calling thread, batches from shared memory, runs that overlap, failures
 * that come back as rejections, and a thread that ends with dispose.
 */
import { readFileSync } from 'node:fs'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import t from 'tap'
import { openSession, type SessionOptions } from '../../src/inference/onnx-backend.js'
import { openThreadedSession } from '../../src/inference/threaded-session.js'
import { scanModels, selectModel } from '../../src/models/catalog.js'
import { testModelsDir } from '../helpers/models.js'

const { entries } = await scanModels(await testModelsDir())
const aesthetic = selectModel(entries, 'aesthetic')!
const inputName = aesthetic.manifest.input.name
const options: SessionOptions = { providers: ['cpu'], intraOpThreads: 1, interOpThreads: 1 }
const PER_IMAGE = 224 * 224 * 3
const shape = (n: number) => [n, 224, 224, 3]

/** Deterministic photo-like values in [-1, 1]. */
function batch(n: number, seed: number, into: Float32Array<ArrayBufferLike> = new Float32Array(n * PER_IMAGE)): Float32Array<ArrayBufferLike> {
  let x = seed >>> 0
  for (let i = 0; i < n * PER_IMAGE; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0
    into[i] = (x / 2 ** 31) - 1
  }
  return into
}

const here = await openSession(aesthetic.modelPath, inputName, options)
const threaded = await openThreadedSession(aesthetic.modelPath, inputName, options)
t.teardown(async () => {
  await here.dispose()
  await threaded.dispose()
})

t.test('the same outputs, value for value, as the session on this thread', async (t) => {
  t.equal(threaded.provider, 'cpu')
  t.ok(Number.isInteger(threaded.threadId) && threaded.threadId !== process.pid, `a thread of its own (Linux thread id ${threaded.threadId})`)
  t.equal(here.threadId, undefined, 'a session on this thread names none')
  const input = batch(3, 7)
  const a = await here.run(input, shape(3), ['scores', 'features'])
  const b = await threaded.run(input, shape(3), ['scores', 'features'])
  t.same([...b.scores!], [...a.scores!])
  t.same([...b.features!], [...a.features!])
  t.ok(input.some((v) => v !== 0), 'the caller keeps its input (copied, not moved)')
})

t.test('a batch in shared memory, as nima-model.ts writes it: read where it is, on either thread', async (t) => {
  const shared = new Float32Array(new SharedArrayBuffer(4 * PER_IMAGE * 4))
  batch(2, 11, shared)
  const view = shared.subarray(0, 2 * PER_IMAGE)
  const expected = await here.run(Float32Array.from(view), shape(2), ['scores'])
  t.same([...(await threaded.run(view, shape(2), ['scores'])).scores!], [...expected.scores!])
  t.same([...(await here.run(view, shape(2), ['scores'])).scores!], [...expected.scores!], 'the main-thread session copies it too')
})

t.test('overlapping runs each get their own answer', async (t) => {
  const inputs = [1, 2, 3, 4].map((seed) => batch(1, seed))
  const expected = await Promise.all(inputs.map((x) => here.run(x, shape(1), ['scores'])))
  const shared = inputs.map((x) => {
    const s = new Float32Array(new SharedArrayBuffer(x.byteLength))
    s.set(x)
    return s
  })
  const got = await Promise.all(shared.map((x) => threaded.run(x, shape(1), ['scores'])))
  got.forEach((g, i) => t.same([...g.scores!], [...expected[i]!.scores!], `run ${i}`))
})

t.test('inference does not block the event loop', async (t) => {
  const input = batch(4, 5)
  const h = monitorEventLoopDelay({ resolution: 1 })
  h.enable()
  for (let i = 0; i < 5; i++) await threaded.run(input, shape(4), ['scores'])
  h.disable()
  const onThisThread = monitorEventLoopDelay({ resolution: 1 })
  onThisThread.enable()
  for (let i = 0; i < 5; i++) await here.run(input, shape(4), ['scores'])
  onThisThread.disable()
  // Not a timing target: the comparison shows where the run happens.
  t.ok(h.max < onThisThread.max, `longest stall ${(h.max / 1e6).toFixed(1)} ms with the worker, ${(onThisThread.max / 1e6).toFixed(1)} ms on this thread`)
})

t.test('a failed run rejects with the runtime’s message; the session goes on', async (t) => {
  await t.rejects(threaded.run(batch(1, 1), [1, 100, 100, 3], ['scores']), /./)
  await t.rejects(threaded.run(batch(1, 1), shape(1), ['no-such-output']), /no-such-output|invalid|not found/i)
  t.equal((await threaded.run(batch(1, 1), shape(1), ['scores'])).scores!.length, 10)
})

t.test('a model that cannot load rejects the open, with every provider tried', async (t) => {
  await t.rejects(openThreadedSession(Buffer.from('not an onnx model'), inputName, options), /no execution provider could load the 17-byte model \(cpu: /)
  await t.rejects(openThreadedSession(readFileSync(aesthetic.modelPath).subarray(0, 1000), inputName, options), /no execution provider could load/)
})

t.test('dispose ends the thread; later runs reject', async (t) => {
  const s = await openThreadedSession(aesthetic.modelPath, inputName, options)
  const running = s.run(batch(2, 3), shape(2), ['scores'])
  await s.dispose()
  // A run already posted finishes before the dispose message is read.
  t.equal((await running).scores!.length, 20)
  await t.rejects(s.run(batch(1, 1), shape(1), ['scores']), /session disposed/)
  await s.dispose()
})
