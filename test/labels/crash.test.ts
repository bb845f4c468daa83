import { existsSync, readdirSync } from 'node:fs'
import { dirname, join } from 'node:path'
import t, { type Test } from 'tap'
import { runLabelsCommand } from '../../src/cli/finetune-command.js'
import { parseExport } from '../../src/labels/export.js'
import { recordIo } from '../models/cli-io.js'
import { startTestService } from '../helpers/service.js'
import { startWriter } from './writer-process.js'

// Durability with no hand: a real process rating without pause is killed with SIGKILL
// (as an OOM-kill would), three times over, each time leaving the driver's `<db>.lock`
// folder (held for the connection's life) and a WAL with whatever it was writing; each next
// process opens the database by itself, and every rating a killed one acknowledged is there.

/** Three writers killed mid-stream, each restarted on what the last one left; returns every acknowledgement. */
async function crashWhileRating(t: Test, db: string): Promise<string[]> {
  const acks: string[] = []
  for (let round = 1; round <= 3; round++) {
    const w = startWriter(db, 'write')
    await w.until((l) => l === 'ready')
    if (round > 1) t.match(w.lines.find((l) => l.startsWith('recovered ')), /removed .*labels\.sqlite\.lock, left by process \d+/, `writer ${round} took over from the killed one by itself`)
    const seen = w.lines.length
    await w.until(() => w.lines.length >= seen + 100)
    w.child.kill('SIGKILL')
    t.equal(await w.exited, 'SIGKILL')
    acks.push(...w.lines.filter((l) => l.startsWith('ack ')))
    t.ok(existsSync(`${db}.lock`) && existsSync(`${db}-wal`), `kill ${round} left the lock folder and the WAL behind`)
  }
  return acks
}

function missing(acks: readonly string[], exported: readonly { imageId: string; rater: string; rating: number | null }[]): string[] {
  const have = new Set(exported.map((r) => `ack ${r.imageId} ${r.rater} ${r.rating}`))
  return [...new Set(acks)].filter((a) => !have.has(a))
}

t.test('kill -9 during rating writes, lock folder left behind: the service starts by itself and exports every acknowledged rating', async (t) => {
  const db = join(t.testdir(), 'labels.sqlite')
  const acks = await crashWhileRating(t, db)
  t.ok(acks.length >= 300, `${acks.length} ratings acknowledged before the kills`)

  const svc = await startTestService({ LABELS_DB: db })
  const res = await fetch(`${svc.url}/labels/export`)
  t.equal(res.status, 200, 'the restarted service answers')
  const rows = parseExport(await res.text())
  t.same(missing(acks, rows), [], 'every acknowledged rating is exported')
  const rate = await fetch(`${svc.url}/labels/ratings`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ imageId: rows[0]!.imageId, rater: 'after', rating: 4 }) })
  t.equal(rate.status, 201, 'and takes new ratings')
  await svc.server.shutdown()
  t.same(readdirSync(dirname(db)).filter((f) => f.startsWith('labels.sqlite')), ['labels.sqlite'], 'a clean stop leaves the database file alone: no lock folder, WAL, or owner files')
})

t.test('kill -9, then the CLI export (a read-only open) recovers the WAL: every acknowledged rating is there', async (t) => {
  const db = join(t.testdir(), 'labels.sqlite')
  const acks = await crashWhileRating(t, db)
  const io = recordIo()
  t.equal(await runLabelsCommand(['export', '--db', db], io), 0, io.stderr)
  t.same(missing(acks, parseExport(io.stdout)), [], 'every acknowledged rating is exported')
  t.same(readdirSync(dirname(db)).filter((f) => f.startsWith('labels.sqlite')), ['labels.sqlite'], 'no lock folder, WAL, or owner files left')
})
