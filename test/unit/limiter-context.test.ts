import { AsyncLocalStorage } from 'node:async_hooks'
import t from 'tap'
import { createLimiter } from '../../src/util/limiter.js'

t.test('a task that waited runs in its caller\'s async context, not in that of the task that let it start', async (t) => {
  const store = new AsyncLocalStorage<string>()
  const limiter = createLimiter(1)
  let release!: () => void
  const first = store.run('first', () =>
    limiter.run(async () => {
      await new Promise<void>((resolve) => (release = resolve))
      return store.getStore()
    }),
  )
  // Queued behind `first`; it starts from inside first's completion.
  const second = store.run('second', () => limiter.run(() => store.getStore()))
  t.equal(limiter.pending, 1)
  release()
  t.same(await Promise.all([first, second]), ['first', 'second'])
})
