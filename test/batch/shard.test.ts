import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { ScoreCache } from '../../src/batch/score-cache.js'
import { parseShard, shardOf } from '../../src/batch/shard.js'
import { loadTestScorer, readResults, runInProcess, smallPhotos } from './helpers.js'

t.test('parseShard: i/n, 0-based; bad values are refused with what was expected', async (t) => {
  t.same(parseShard('0/1'), { index: 0, count: 1 })
  t.same(parseShard(' 3/4 '), { index: 3, count: 4 })
  for (const bad of ['4/4', '1/0', '-1/3', 'a/b', '1', '1/2/3', '']) {
    t.throws(() => parseShard(bad), { name: 'RangeError', message: /--shard: expected i\/n with 1 ≤ n ≤ 1000000 and 0 ≤ i < n/ }, bad)
  }
})

t.test('shardOf: deterministic, in range, and even', async (t) => {
  // Pinned values: a change here would reshuffle running Indexed Jobs between pods.
  t.same([1, 2, 3, 4, 5, 7, 16].map((n) => shardOf('hotel-1/img-1', n)), [0, 0, 0, 2, 3, 1, 2])
  t.same([1, 2, 3, 4, 5].map((n) => shardOf('https://x/a.jpg', n)), [0, 1, 0, 3, 4])
  const keys = Array.from({ length: 20_000 }, (_, i) => `hotel-${i % 997}/img-${i}`)
  for (let n = 1; n <= 5; n++) {
    const counts = new Array<number>(n).fill(0)
    for (const k of keys) counts[shardOf(k, n)]! += 1
    t.ok(counts.every((c) => Math.abs(c - keys.length / n) < 0.05 * keys.length), `n=${n}: ${counts.join(' ')}`)
  }
})

t.test('the union of the n shards of a real run is the input, each key exactly once (n = 1..5)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'nima-shard-test-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const scorer = await loadTestScorer()
  t.teardown(() => scorer.dispose())
  const cache = await ScoreCache.open(join(dir, 'cache'))
  t.teardown(() => cache.close())

  // 3 distinct small photos behind 36 keys, plus bad records: those are items too and must be sharded.
  const photos = smallPhotos(3)
  const lines: string[] = []
  for (let i = 0; i < 36; i++) lines.push(JSON.stringify({ hotel_id: `h${i % 5}`, image_id: `img${i}`, path: photos[i % photos.length] }))
  lines.splice(7, 0, '{"hotel_id": "h9", "image_id": "broken"')
  lines.splice(20, 0, '{"hotel_id": "h9", "image_id": "nourl"}')
  const input = join(dir, 'input.jsonl')
  writeFileSync(input, lines.join('\n') + '\n')
  const expected = [...Array.from({ length: 36 }, (_, i) => `h${i % 5}/img${i}`), 'line:8', 'h9/nourl'].sort()

  for (let n = 1; n <= 5; n++) {
    const seen: string[] = []
    for (let i = 0; i < n; i++) {
      const output = join(dir, `n${n}-shard${i}.jsonl`)
      const s = await runInProcess(scorer, { path: input, format: 'jsonl' }, { output, shard: { index: i, count: n } }, { cache })
      t.equal(s.total, expected.length)
      t.equal(s.written + s.notInShard, s.total, `n=${n} i=${i}: every item is either here or in another shard`)
      const rows = readResults(output)
      t.equal(rows.length, s.written)
      t.ok(rows.every((r) => shardOf(r.key, n) === i), `n=${n} i=${i}: only this shard's keys`)
      seen.push(...rows.map((r) => r.key))
    }
    t.same(seen.sort(), expected, `n=${n}: union is the input, each key once`)
  }
})
