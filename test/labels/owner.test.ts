import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, utimesSync, writeFileSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import t from 'tap'
import { bootId, claimDatabase, DatabaseOwnedError, GRACE_MS } from '../../src/labels/owner.js'
import { LabelStore } from '../../src/labels/store.js'
import { startWriter } from './writer-process.js'

// Who owns a label database, with real processes: a live one excludes every other, a dead
// one (its socket refuses) is taken over, a concurrent start has exactly one winner.

/** Leaves a socket file that refuses, as a killed owner does: a process binds it and exits without closing. */
function deadSocket(path: string): void {
  // Bound by its name from its folder: test folders can be longer than a socket address.
  const r = spawnSync(process.execPath, ['-e', `require('node:net').createServer().listen(${JSON.stringify(basename(path))}, () => process.exit(0))`], { cwd: dirname(path) })
  if (r.status !== 0 || !existsSync(path)) throw new Error(`could not leave a dead socket at ${path}`)
}

function ownerFiles(db: string): string[] {
  const base = db.split('/').pop()!
  return readdirSync(join(db, '..')).filter((f) => f.startsWith(`${base}.owner-`)).sort()
}

t.test('two live processes: the second is refused with a message naming the first; once the first is killed, the next open takes over', async (t) => {
  const db = join(t.testdir(), 'labels.sqlite')
  const first = startWriter(db, 'hold')
  t.teardown(() => void first.child.kill('SIGKILL'))
  await first.until((l) => l === 'ready')

  const second = startWriter(db, 'hold')
  t.equal(await second.exited, 3, 'the second process exits')
  const refusal = second.lines.find((l) => l.startsWith('refused '))!
  t.match(refusal, new RegExp(`^refused IN_USE label database .*labels\\.sqlite is in use by process ${first.child.pid} on .*: its owner socket answers\\. A label database serves one process at a time`))

  await t.rejects(LabelStore.open(db, { readOnly: true }), { name: 'LabelStoreError', code: 'IN_USE', message: new RegExp(`process ${first.child.pid}`) }, 'a read-only open (the CLI export) is refused as well')

  first.child.kill('SIGKILL')
  await first.exited
  t.ok(existsSync(`${db}.lock`), 'the killed owner left its lock folder')
  const store = await LabelStore.open(db)
  t.match(store.recovered, new RegExp(`removed .*labels\\.sqlite\\.lock, left by process ${first.child.pid}`), 'the store says what it cleaned up')
  t.equal(store.countImages(), 0)
  const again = await LabelStore.open(db, { readOnly: true })
  t.equal(again.recovered, undefined, 'a second open in the same process shares the first')
  t.throws(() => again.rate({ imageId: 'x'.repeat(64), rater: 'ana', rating: 3 }), { code: 'INVALID', message: /opened read-only/ })
  again.close()
  t.equal(store.countImages(), 0, 'closing one store leaves the other working')
  store.close()
  t.same(ownerFiles(db), [], 'a clean close leaves no owner files')
  t.notOk(existsSync(`${db}.lock`))
})

t.test('processes starting together on a database a dead owner left: exactly one wins', async (t) => {
  const db = join(t.testdir(), 'labels.sqlite')
  ;(await LabelStore.open(db)).close()
  deadSocket(`${db}.owner-1.sock`)
  mkdirSync(`${db}.lock`)
  const writers = [1, 2, 3, 4].map(() => startWriter(db, 'hold'))
  t.teardown(() => writers.forEach((w) => w.child.kill('SIGKILL')))
  const outcome = await Promise.all(writers.map((w) => Promise.race([w.until((l) => l === 'ready').then(() => 'owner'), w.exited.then((c) => `exit ${c}`)])))
  t.same(outcome.filter((o) => o === 'owner').length, 1, `one owner: ${outcome.join(', ')}`)
  t.same(outcome.filter((o) => o === 'exit 3').length, 3, 'the others are refused')
  const winner = writers[outcome.indexOf('owner')]!
  t.match(winner.lines.find((l) => l.startsWith('recovered')), /removed .*\.lock/)
  for (const w of writers.filter((w) => w !== winner)) t.match(w.lines.find((l) => l.startsWith('refused')), new RegExp(`in use by process ${winner.child.pid}`))
})

t.test('claims, unit by unit', async (t) => {
  const dir = t.testdir()

  t.test('a refusing socket younger than the grace period is waited for, not called dead at once', async (t) => {
    const db = join(dir, 'young.sqlite')
    deadSocket(`${db}.owner-1.sock`)
    const started = Date.now()
    const own = await claimDatabase(db)
    t.ok(Date.now() - started >= GRACE_MS - 300, `waited ${Date.now() - started} ms`)
    t.match(own.recovered, /took over from an unknown process/)
    t.same(ownerFiles(db), ['young.sqlite.owner-2.json', 'young.sqlite.owner-2.sock'], 'the dead generation is removed, the next one is ours')
    await t.rejects(claimDatabase(db), DatabaseOwnedError, 'a second claim from this process finds the first alive')
    own.release()
    t.same(ownerFiles(db), [])
  })

  t.test('an owner on another kernel: dead once its heartbeat is older than the lease; refused while the heartbeat moves', async (t) => {
    const db = join(dir, 'foreign.sqlite')
    const record = { pid: 4242, host: 'elsewhere', boot: `not-${bootId()}`, since: new Date().toISOString(), command: 'nima-serve serve' }
    deadSocket(`${db}.owner-1.sock`)
    writeFileSync(`${db}.owner-1.json`, JSON.stringify(record))
    const started = Date.now()
    const own = await claimDatabase(db, { leaseMs: 1500 })
    t.ok(Date.now() - started >= 1200, `waited out the lease (${Date.now() - started} ms)`)
    t.match(own.recovered, /took over from process 4242 on elsewhere/)
    own.release()

    deadSocket(`${db}.owner-1.sock`)
    writeFileSync(`${db}.owner-1.json`, JSON.stringify(record))
    const beat = setInterval(() => utimesSync(`${db}.owner-1.json`, new Date(), new Date()), 200)
    t.teardown(() => clearInterval(beat))
    await t.rejects(claimDatabase(db, { leaseMs: 1500 }), { name: 'DatabaseOwnedError', message: /process 4242 on elsewhere .*another machine and its heartbeat moves/ })
  })

  t.test('a path too long for a socket address still works (through the folder’s descriptor)', async (t) => {
    const deep = join(dir, 'a'.repeat(60), 'b'.repeat(60))
    const db = join(deep, 'labels.sqlite')
    t.ok(Buffer.byteLength(`${db}.owner-1.sock`) > 108, 'longer than sun_path')
    const store = await LabelStore.open(db)
    t.same(ownerFiles(db), ['labels.sqlite.owner-1.json', 'labels.sqlite.owner-1.sock'], 'the socket is where it belongs, under its full name')
    const w = startWriter(db, 'hold')
    t.equal(await w.exited, 3, 'another process probing through the same long path finds it alive')
    store.close()
    t.same(ownerFiles(db), [])
  })

  t.test('an in-memory database has no owner', async (t) => {
    const a = await LabelStore.open(':memory:')
    const b = await LabelStore.open(':memory:')
    t.equal(a.countImages(), 0)
    a.close()
    b.close()
  })
})
