import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { rankHotels } from '../../src/batch/rank-hotels.js'
import { runRankHotelsCommand } from '../../src/cli/batch-command.js'
import { recordIo } from '../models/cli-io.js'

const models = { aesthetic: { id: 'aesthetic', version: 'v1', task: 'aesthetic', synthetic: true }, technical: { id: 'technical', version: 'v1', task: 'technical', synthetic: true } }

function ok(hotel: string | undefined, image: string, line: number, combined: number, aesthetic: number, sha = `sha-${hotel}-${image}`) {
  return {
    key: hotel === undefined ? image : `${hotel}/${image}`,
    line,
    ...(hotel === undefined ? {} : { hotel_id: hotel }),
    image_id: image,
    source: `https://img.example/${hotel}/${image}.jpg`,
    sha256: sha,
    scores: { aesthetic: { mean: aesthetic, std: 1, distribution: [] }, technical: { mean: 5, std: 1, distribution: [] } },
    combined: { score: combined, weights: { aesthetic: 0.6, technical: 0.4 } },
    models,
    cached: false,
  }
}

function failed(hotel: string, image: string, line: number, code = 'NIMA_UPSTREAM_FAILED') {
  return { key: `${hotel}/${image}`, line, hotel_id: hotel, image_id: image, source: `https://img.example/${hotel}/${image}.jpg`, cached: false, error: { code, message: 'HTTP 404' } }
}

const dir = mkdtempSync(join(tmpdir(), 'nima-rank-test-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))

// Results arrive in completion order, hotels interleaved, across two shard files.
const shard0 = [
  ok('h1', 'a', 1, 6.0, 5.0),
  ok('h2', 'x', 10, 4.0, 4.0),
  ok('h1', 'b', 2, 7.5, 5.0),
  failed('h1', 'c', 3),
  ok('h1', 'd', 4, 6.0, 5.5), // ties with a on combined, better aesthetic → before a
  ok('h1', 'e', 5, 6.0, 5.0), // ties with a on both → after a (input order)
]
const shard1 = [
  ok('h1', 'f', 6, 7.5, 5.0, 'sha-h1-b'), // byte-identical to b → listed as b's duplicate
  ok(undefined, 'lonely', 7, 5, 5),
  failed('h2', 'y', 11, 'NIMA_UNDECODABLE_IMAGE'),
  failed('h2', 'z', 12),
  ok('h2', 'z', 12, 8.0, 6.0), // retried later and succeeded: supersedes the failure
]
const in0 = join(dir, 'results-0.jsonl')
const in1 = join(dir, 'results-1.jsonl')
writeFileSync(in0, shard0.map((l) => JSON.stringify(l)).join('\n') + '\nnot json at all\n')
writeFileSync(in1, shard1.map((l) => JSON.stringify(l)).join('\n') + '\n{"key":"h2/torn","hotel_id":"h2","li')

function readOut(path: string): Record<string, unknown>[] {
  return readFileSync(path, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>)
}

t.test('one line per hotel, best first; ties by aesthetic then input order; duplicates folded; failures apart', async (t) => {
  const out = join(dir, 'best.jsonl')
  const s = await rankHotels({ inputs: [in0, in1], output: out, partitions: 1 })
  const hotels = readOut(out)
  t.same(
    hotels.map((h) => h['hotel_id']),
    ['h1', 'h2'],
    'first-seen order with one partition',
  )
  const h1 = hotels[0] as { ranked: { rank: number; image_id: string; combined: number; duplicates: { image_id: string }[] }[]; failed: { image_id: string; error: { code: string } }[] }
  t.same(h1.ranked.map((r) => [r.rank, r.image_id]), [
    [1, 'b'],
    [2, 'd'],
    [3, 'a'],
    [4, 'e'],
  ])
  t.same(h1.ranked[0]!.duplicates.map((d) => d.image_id), ['f'])
  t.same(h1.failed.map((f) => [f.image_id, f.error.code]), [['c', 'NIMA_UPSTREAM_FAILED']])
  const h2 = hotels[1] as { ranked: { image_id: string; scores: Record<string, number> }[]; failed: { image_id: string; error: { code: string } }[] }
  t.same(h2.ranked.map((r) => r.image_id), ['z', 'x'], 'the later success of z replaces its failure')
  t.same(h2.ranked[0]!.scores, { aesthetic: 6, technical: 5 }, 'per-model means')
  t.same(h2.failed.map((f) => [f.image_id, f.error.code]), [['y', 'NIMA_UNDECODABLE_IMAGE']])
  t.match(s, { hotels: 2, ranked: 6, duplicates: 1, failed: 2, withoutHotel: 1, unparsable: 2, superseded: 1, partitions: 1 })
})

t.test('partitioned (bounded memory) gives the same hotels, possibly in another order', async (t) => {
  const one = join(dir, 'p1.jsonl')
  const many = join(dir, 'p3.jsonl')
  await rankHotels({ inputs: [in0, in1], output: one, partitions: 1 })
  const s = await rankHotels({ inputs: [in0, in1], output: many, partitions: 3, tmpDir: dir })
  const byHotel = (rows: Record<string, unknown>[]) => Object.fromEntries(rows.map((r) => [r['hotel_id'] as string, r]))
  t.same(byHotel(readOut(many)), byHotel(readOut(one)))
  t.equal(s.partitions, 3)
})

t.test('the CLI command: summary on stdout, usage errors exit 2, missing input exits 1', async (t) => {
  const io = recordIo()
  const out = join(dir, 'cli.jsonl')
  t.equal(await runRankHotelsCommand(['--input', in0, '--input', in1, '--output', out], io), 0, io.stderr)
  t.match(JSON.parse(io.lines.at(-1)!), { hotels: 2, ranked: 6 })
  t.match(io.stderr, /rank-hotels: 2 hotels, 6 images ranked/)
  const bad = recordIo()
  t.equal(await runRankHotelsCommand(['--output', out], bad), 2)
  t.match(bad.stderr, /--input is required/)
  const bad2 = recordIo()
  t.equal(await runRankHotelsCommand(['--input', in0, '--output', out, '--partitions', '0'], bad2), 2)
  t.match(bad2.stderr, /--partitions: expected an integer from 1 to 65536, got "0"/)
  const missing = recordIo()
  t.equal(await runRankHotelsCommand(['--input', join(dir, 'nope.jsonl'), '--output', out], missing), 1)
  t.match(missing.stderr, /cannot read --input .*nope.jsonl \(ENOENT\)/)
})

t.test('phashCrops on batch lines: a cropped copy groups through them; lines without (valid) ones by phash alone', async (t) => {
  const A = '0123456789abcdef'
  const A2 = '0123456789abcdec' // 2 bits from A
  const B = 'fedcba9876543210' // 64 bits from A
  const C = '0123456776543210' // 32 bits from A and from B
  const line = (image: string, n: number, combined: number, extra: object) => ({ ...ok('h10', image, n, combined, combined), ...extra })
  const input = join(dir, 'crops.jsonl')
  writeFileSync(
    input,
    [
      line('best', 1, 7, { phash: A }),
      line('cropped', 2, 6.9, { phash: C, phashCrops: [A2, B, B, B] }),
      line('old-cropped', 3, 6.8, { phash: C }),
      line('bad-crops', 4, 6.7, { phash: C, phashCrops: [A2, B, B] }),
    ]
      .map((l) => JSON.stringify(l))
      .join('\n') + '\n',
  )
  const out = join(dir, 'crops-out.jsonl')
  const io = recordIo()
  t.equal(await runRankHotelsCommand(['--input', input, '--output', out], io), 0, io.stderr)
  const ranked = (readOut(out)[0] as { ranked: { image_id: string; near_duplicates: { image_id: string; distance: number }[] }[] }).ranked
  t.same(
    ranked.map((r) => [r.image_id, r.near_duplicates.map((n) => [n.image_id, n.distance])]),
    [
      ['best', [['cropped', 2]]],
      ['old-cropped', [['bad-crops', 0]]],
    ],
    'cropped: 2 bits through its crop hash; without crops (or with three), the whole frames alone: 32 bits from best',
  )
})

t.test('near-duplicates by phash and diverse picks; the CLI flags reach the ranking', async (t) => {
  const A = '0123456789abcdef'
  const A2 = '0123456789abcdec' // 2 bits from A (...1111 vs ...1100)
  const A5 = '0123456776543210' // 32 bits from A and from B
  const B = 'fedcba9876543210'
  const withHash = (image: string, line: number, combined: number, phash?: string) => ({ ...ok('h9', image, line, combined, combined), ...(phash ? { phash } : {}) })
  const input = join(dir, 'near.jsonl')
  writeFileSync(
    input,
    [withHash('best', 1, 7, A), withHash('copy', 2, 6.9, A2), withHash('other', 3, 6, B), withHash('old', 4, 6.95), withHash('far', 5, 6.8, A5), { ...withHash('bad', 6, 5), phash: 'XYZ' }]
      .map((l) => JSON.stringify(l))
      .join('\n') + '\n',
  )
  const out = join(dir, 'near-out.jsonl')
  const run = async (args: string[]) => {
    const io = recordIo()
    t.equal(await runRankHotelsCommand(['--input', input, '--output', out, ...args], io), 0, io.stderr)
    return readOut(out)[0] as { ranked: { image_id: string; near_duplicates: { image_id: string; distance: number }[] }[] }
  }
  const near = (await run([])).ranked
  t.same(near.map((r) => r.image_id), ['best', 'old', 'far', 'other', 'bad'], 'copy folded into best; a line without a (valid) phash is never grouped')
  t.same(near[0]!.near_duplicates.map((n) => [n.image_id, n.distance]), [['copy', 2]])
  const farDistance = (await run(['--max-distance', '64'])).ranked[0]!.near_duplicates.map((n) => n.image_id)
  t.ok(farDistance.includes('far') && farDistance.includes('other'), '--max-distance 64 folds every hashed image')
  t.same((await run(['--no-near-duplicates'])).ranked.map((r) => r.image_id), ['best', 'old', 'copy', 'far', 'other', 'bad'], '--no-near-duplicates: the plain order')
  const picks = (await run(['--no-near-duplicates', '--select', '2', '--diversity', '0.5'])).ranked.map((r) => r.image_id)
  t.not(picks[1], 'copy', 'the second pick is not the copy of the first')
  const bad = recordIo()
  t.equal(await runRankHotelsCommand(['--input', input, '--output', out, '--diversity', '0.5'], bad), 2)
  t.match(bad.stderr, /--diversity needs --select K/)
  const bad2 = recordIo()
  t.equal(await runRankHotelsCommand(['--input', input, '--output', out, '--select', '2', '--diversity', '1.5'], bad2), 2)
  t.match(bad2.stderr, /--diversity: expected a number from 0 to 1, got "1.5"/)
  const bad3 = recordIo()
  t.equal(await runRankHotelsCommand(['--input', input, '--output', out, '--max-distance', '65'], bad3), 2)
})
