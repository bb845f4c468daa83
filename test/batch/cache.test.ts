import { cpSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import type { ResultLine } from '../../src/batch/pipeline.js'
import { ScoreCache } from '../../src/batch/score-cache.js'
import { testModelsDir } from '../helpers/models.js'
import { loadTestScorer, readResults, runInProcess, smallPhotos } from './helpers.js'

const dir = mkdtempSync(join(tmpdir(), 'nima-cache-test-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))

// 3 distinct photos, each listed for two hotels: byte-identical images must be scored once.
const photos = smallPhotos(3)
const input = join(dir, 'input.jsonl')
writeFileSync(input, [0, 1, 2, 0, 1, 2].map((p, i) => JSON.stringify({ hotel_id: `h${i < 3 ? 1 : 2}`, image_id: `i${i}`, path: photos[p] })).join('\n') + '\n')
const cacheDir = join(dir, 'cache')

const byKey = (rows: ResultLine[]) => new Map(rows.map((r) => [r.key, r]))
const content = (r: ResultLine) => ({ sha256: r.sha256, width: r.width, height: r.height, format: r.format, bytes: r.bytes, phash: r.phash, phashCrops: r.phashCrops, scores: r.scores, combined: r.combined })

t.test('first run scores each distinct image once; a second run (cache reopened from disk) is all cached, with identical scores', async (t) => {
  const scorer = await loadTestScorer()
  t.teardown(() => scorer.dispose())

  const cache1 = await ScoreCache.open(cacheDir)
  const first = await runInProcess(scorer, { path: input, format: 'jsonl' }, { output: join(dir, 'run1.jsonl') }, { cache: cache1 })
  await cache1.close()
  t.match(first, { written: 6, scored: 3, cached: 3, failed: 0 })
  const run1 = readResults(join(dir, 'run1.jsonl'))
  t.equal(run1.filter((r) => r.cached).length, 3)

  const cache2 = await ScoreCache.open(cacheDir)
  const second = await runInProcess(scorer, { path: input, format: 'jsonl' }, { output: join(dir, 'run2.jsonl') }, { cache: cache2 })
  await cache2.close()
  t.match(second, { written: 6, scored: 0, cached: 6, failed: 0, cache: { misses: 0 } }, 'every score from the disk')
  // Each line looks its two scores up, except a duplicate that joins its twin still in flight.
  const hits = second.cache!.hits
  t.ok(hits >= 3 * 2 && hits <= 6 * 2 && hits % 2 === 0, `${hits} disk hits: 2 per distinct image, 2 per duplicate that came after its twin`)
  const run2 = byKey(readResults(join(dir, 'run2.jsonl')))
  for (const r of run1) {
    t.ok(run2.get(r.key)!.cached, `${r.key} cached`)
    t.same(content(run2.get(r.key)!), content(r), `${r.key}: same bytes, same scores, bit for bit`)
  }

  t.ok(run1.every((r) => /^[0-9a-f]{16}$/.test(r.phash ?? '')), 'every line carries the perceptual hash, cached or not')
  t.ok(run1.every((r) => r.phashCrops?.length === 4 && r.phashCrops.every((h) => /^[0-9a-f]{16}$/.test(h))), 'and the four corner-crop hashes')

  // A cache written before phash existed: image info without it. Scores still hit; the
  // image is decoded once more to hash it, and the info is rewritten with the hash.
  const { open } = await import('lmdb')
  const raw = open<unknown, string>({ path: join(cacheDir, 'scores.lmdb'), compression: false })
  // Half the entries from before phashCrops: a phash, no crop hashes; they count as missing too.
  for (const [i, r] of run1.entries()) await raw.put(`i1/${r.sha256}`, { width: r.width, height: r.height, format: r.format, ...(i % 2 ? { phash: r.phash } : {}) })
  await raw.close()
  const cache3 = await ScoreCache.open(cacheDir)
  const third = await runInProcess(scorer, { path: input, format: 'jsonl' }, { output: join(dir, 'run2b.jsonl') }, { cache: cache3 })
  await cache3.close()
  t.match(third, { written: 6, scored: 0, cached: 6 }, 'no model ran: every score came from the cache')
  const run2b = byKey(readResults(join(dir, 'run2b.jsonl')))
  for (const r of run1) t.same(content(run2b.get(r.key)!), content(r), `${r.key}: the hash recomputed from the pixels, the same`)
  const cache4 = await ScoreCache.open(cacheDir)
  t.ok(run1.every((r) => cache4.getImage(r.sha256!, 'exact')?.phash === r.phash), 'the image info was rewritten with the hash')
  t.ok(run1.every((r) => cache4.getImage(r.sha256!, 'exact')?.phashCrops.join() === r.phashCrops!.join()), 'and with the crop hashes')
  await cache4.close()

  const nocache = await runInProcess(scorer, { path: input, format: 'jsonl' }, { output: join(dir, 'run3.jsonl') })
  t.match(nocache, { scored: 6, cached: 0 }, 'without a cache every line is scored')
  const run3 = byKey(readResults(join(dir, 'run3.jsonl')))
  for (const r of run1) t.same(run3.get(r.key)!.scores, r.scores, `${r.key}: cached scores equal freshly computed ones`)
})

t.test('a new model version misses the cache; the unchanged model still hits', async (t) => {
  // A models folder where aesthetic has another version label (same weights file).
  const models = join(dir, 'models-v2')
  cpSync(await testModelsDir(), models, { recursive: true })
  const [oldVersion] = readdirSync(join(models, 'aesthetic'))
  const newVersion = `${oldVersion}-retrained`
  renameSync(join(models, 'aesthetic', oldVersion!), join(models, 'aesthetic', newVersion))
  const manifestPath = join(models, 'aesthetic', newVersion, 'manifest.json')
  writeFileSync(manifestPath, JSON.stringify({ ...JSON.parse(readFileSync(manifestPath, 'utf8')), version: newVersion }))

  const scorer = await loadTestScorer({ MODELS_DIR: models })
  t.teardown(() => scorer.dispose())
  const cache = await ScoreCache.open(cacheDir)
  const s = await runInProcess(scorer, { path: input, format: 'jsonl' }, { output: join(dir, 'run-v2.jsonl') }, { cache })
  await cache.close()
  t.match(s, { written: 6, scored: 3, cached: 3 }, 'distinct images recomputed once more, duplicates reused within the run')
  t.equal(s.cache!.misses, 3, 'the 3 distinct images miss for the new aesthetic version only (a duplicate joins its twin in flight, or finds what it stored)')
  t.ok(s.cache!.hits >= 3 && (s.cache!.hits - 3) % 2 === 0, `technical still hits for them (${s.cache!.hits} hits: 3, and 2 per duplicate that came after its twin)`)
  const rows = readResults(join(dir, 'run-v2.jsonl'))
  t.ok(rows.every((r) => r.models!['aesthetic']!.version === newVersion))
})

t.test('the LMDB store: a write is seen by the next lookup at once, before its commit', async (t) => {
  const cache = await ScoreCache.open(join(dir, 'store'))
  t.teardown(() => cache.close())
  const sha = 'ab'.repeat(32)
  const model = { id: 'aesthetic', version: 'v1', sha256: 'cd'.repeat(32) }
  const other = { ...model, id: 'technical' }
  t.same(await cache.lookup(sha, 'exact', [model]), { image: undefined, scores: [undefined], layer: undefined }, 'nothing before')
  const image = { width: 4, height: 3, format: 'jpeg', phash: '0123456789abcdef', phashCrops: ['0123456789abcdef', '0123456789abcdef', '0123456789abcdef', '0123456789abcdef'] }
  const score = { mean: 5.5, std: 1.25, distribution: [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1] }
  cache.store(sha, 'exact', image, [[model, score]])
  t.same(await cache.lookup(sha, 'exact', [model, other]), { image, scores: [score, undefined], layer: 'lmdb' }, 'what was stored, at once; the other model still missing')
  t.match(cache.stats, { hits: 1, misses: 2 })
  t.same(await cache.lookup(sha, 'fast', [model]), { image: undefined, scores: [undefined], layer: undefined }, 'PREPROCESS=fast never reads what exact stored')
})
