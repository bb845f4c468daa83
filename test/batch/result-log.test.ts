import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { KeySet, OutputError, ResultWriter, checkOutputAvailable, prepareOutput } from '../../src/batch/result-log.js'

const dir = mkdtempSync(join(tmpdir(), 'nima-result-log-test-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))

const ok = (key: string) => JSON.stringify({ key, line: 1, scores: {}, cached: false })
const bad = (key: string) => JSON.stringify({ key, line: 1, cached: false, error: { code: 'NIMA_UPSTREAM_TIMEOUT', message: 'slow' } })

t.test('new: a missing or empty output is fine, an existing one is refused', async (t) => {
  const path = join(dir, 'sub', 'new.jsonl')
  t.same((await prepareOutput(path, 'new')).lines, 0, 'parent folders are created')
  writeFileSync(path, `${ok('a')}\n`)
  await t.rejects(prepareOutput(path, 'new'), OutputError)
  await t.rejects(checkOutputAvailable(path, 'new'), { message: /already exists \(\d+ bytes\): add --resume/ })
  await checkOutputAvailable(path, 'resume')
})

t.test('resume: keeps complete lines (failed too), ignores corrupt ones, cuts a torn tail', async (t) => {
  const path = join(dir, 'resume.jsonl')
  const torn = '{"key":"d","li'
  writeFileSync(path, `${ok('a')}\n${bad('b')}\nnot json\n\n${ok('c')}\n${torn}`)
  const r = await prepareOutput(path, 'resume')
  t.match(r, { lines: 3, failed: 1, dropped: 0, unparsable: 1, tornBytes: torn.length })
  t.ok(r.keys.has('a') && r.keys.has('b') && r.keys.has('c'))
  t.notOk(r.keys.has('d'))
  t.equal(readFileSync(path, 'utf8'), `${ok('a')}\n${bad('b')}\nnot json\n\n${ok('c')}\n`, 'truncated to the last newline')
})

t.test('retry-failed: rewrites the file without its failed lines', async (t) => {
  const path = join(dir, 'retry.jsonl')
  writeFileSync(path, `${ok('a')}\n${bad('b')}\n${ok('c')}\n${bad('d')}\n{"key":"e"`)
  const r = await prepareOutput(path, 'retry-failed')
  t.match(r, { lines: 2, failed: 0, dropped: 2, tornBytes: 10 })
  t.ok(r.keys.has('a') && r.keys.has('c'))
  t.notOk(r.keys.has('b') || r.keys.has('d'))
  t.equal(readFileSync(path, 'utf8'), `${ok('a')}\n${ok('c')}\n`)
})

t.test('writer: flushes every K lines or after T ms, and on close', async (t) => {
  const path = join(dir, 'writer.jsonl')
  const w = await ResultWriter.open(path, { flushLines: 3, flushMs: 80 })
  w.append({ key: 'a' })
  w.append({ key: 'b' })
  t.equal(readFileSync(path, 'utf8'), '', 'nothing written before K lines or T ms')
  w.append({ key: 'c' })
  await w.flush()
  t.equal(readFileSync(path, 'utf8').split('\n').length - 1, 3, 'K lines: flushed')
  w.append({ key: 'd' })
  await sleep(250)
  t.equal(readFileSync(path, 'utf8').split('\n').length - 1, 4, 'T ms: flushed')
  w.append({ key: 'e' })
  await w.close()
  t.same(
    readFileSync(path, 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { key: string }).key),
    ['a', 'b', 'c', 'd', 'e'],
  )
  t.equal(w.written, 5)
  t.throws(() => w.append({ key: 'f' }), /after close/)
})

t.test('KeySet stores digests, not keys', async (t) => {
  const s = new KeySet()
  s.add('https://cdn.example/a-very-long-url/' + 'x'.repeat(500))
  t.ok(s.has('https://cdn.example/a-very-long-url/' + 'x'.repeat(500)))
  t.notOk(s.has('https://cdn.example/a-very-long-url/'))
  t.equal(KeySet.digest('k').length, 22)
})
