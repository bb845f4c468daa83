import { createHash } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { BoundCalibration } from '../../src/calibration/bound-calibration.js'
import { buildCalibration, raterMeans, type CatalogueImage } from '../../src/calibration/build.js'
import { CalibrationError, parseCalibration, readCalibration } from '../../src/calibration/calibration-file.js'
import { runCalibrateCommand } from '../../src/cli/calibrate-command.js'

const sha = (n: number): string => n.toString(16).padStart(64, '0')
const A = sha(0xa)
const T = sha(0x7)

/** A catalogue of n images whose aesthetic mean is 4 + i/n and technical 5 − i/n. */
function catalogue(n: number): CatalogueImage[] {
  return Array.from({ length: n }, (_, i) => {
    const a = 4 + i / n
    const te = 5 - i / n
    return {
      sha256: sha(1000 + i),
      models: [
        { id: 'aesthetic', version: 'v1', task: 'aesthetic', sha256: A, synthetic: false, mean: a },
        { id: 'technical', version: 'v1', task: 'technical', sha256: T, synthetic: false, mean: te },
      ],
      combined: { score: 0.6 * a + 0.4 * te, weights: { aesthetic: 0.6, technical: 0.4 } },
    }
  })
}

t.test('build, validate, bind and annotate', async (t) => {
  const images = catalogue(100)
  // An image listed twice counts once.
  const { file, report } = buildCalibration([...images, images[0]!], { createdAt: '2026-12-01T00:00:00.000Z', tool: 'test' })
  t.same(report.map((r) => [r.entry, r.size]), [['aesthetic@v1', 100], ['technical@v1', 100], ['combined aesthetic=0.6,technical=0.4', 100]])
  t.same(parseCalibration(JSON.parse(JSON.stringify(file)), 'x'), file, 'what is written reads back')

  const bound = BoundCalibration.bind(file, [{ id: 'aesthetic', version: 'v1', sha256: A }, { id: 'technical', version: 'v1', sha256: T }], 'test')
  const r = bound.annotate({ aesthetic: { mean: 4.5, std: 1 }, technical: { mean: 4.5, std: 1 } }, { score: 4.5, weights: { aesthetic: 0.6, technical: 0.4 } })
  // 4.5 is the 51st of 100 aesthetic means (4.00 … 4.99): (51 − ½)/100; the 50th of the technical ones (4.01 … 5.00).
  t.equal(r.scores['aesthetic']!.percentile, 50.5, 'aesthetic 4.5: its mid-rank share of the catalogue')
  t.equal(r.scores['technical']!.percentile, 49.5)
  t.equal(r.scores['aesthetic']!.std, 1, 'the other fields are kept')
  t.type(r.combined.percentile, 'number')
  t.notOk('calibrated' in r.scores['aesthetic']!, 'no rater map, no calibrated')
  t.notOk('percentile' in bound.annotate({ aesthetic: { mean: 5 } }, { score: 5, weights: { aesthetic: 0.6 } }).combined, 'another set of models: no combined percentile')
  t.ok(bound.combinedFor(['technical', 'aesthetic'], { aesthetic: 6, technical: 4 }), 'proportional weights match')
  t.notOk(bound.combinedFor(['aesthetic', 'technical'], { aesthetic: 0.5, technical: 0.5 }), 'other weights do not')

  // Only one model's file loaded: that one calibrated, the combined entry unusable.
  const partial = BoundCalibration.bind(file, [{ id: 'aesthetic', version: 'v1', sha256: A }, { id: 'technical', version: 'v2', sha256: sha(99) }], 'test')
  t.same(partial.uncalibrated, ['technical'])
  t.same(partial.unused, ['technical@v1'])
  t.notOk(partial.combinedFor(['aesthetic', 'technical'], { aesthetic: 0.6, technical: 0.4 }))
  t.throws(() => BoundCalibration.bind(file, [{ id: 'aesthetic', version: 'v2', sha256: sha(98) }], 'SCORE_CALIBRATION f.json'), {
    name: 'CalibrationError',
    message: /SCORE_CALIBRATION f\.json matches none of the loaded models: it calibrates aesthetic@v1 \(sha256 000000000000…\), technical@v1 .*; loaded are aesthetic@v2/,
  })
})

t.test('rater means and the map in the file', async (t) => {
  const means = raterMeans([
    { imageId: 'a', rating: 4, histogram: null, group: 'h1' },
    { imageId: 'a', rating: 6, histogram: null, group: 'h1' },
    { imageId: 'b', rating: null, histogram: [0, 0, 0, 0, 0, 0, 0, 1, 1, 0] },
  ])
  t.same(means.get('a'), { mean: 5, ratings: 2, group: 'h1' })
  t.same(means.get('b'), { mean: 8.5, ratings: 1, group: 'image:b' }, 'a histogram counts as its mean; no group: its own')

  const images = catalogue(40)
  const labels = new Map(images.map((img, i) => [img.sha256, { mean: 1 + (9 * i) / 39, ratings: 1, group: `g${i % 4}` }]))
  const { file } = buildCalibration(images, { createdAt: '2026-12-01T00:00:00.000Z', tool: 'test', labels })
  const rater = file.models[0]!.rater!
  t.equal(rater.images, 40)
  t.equal(rater.evaluation?.folds, 4)
  t.ok(rater.evaluation!.after.mae < 0.5 && rater.evaluation!.before.mae > 1, 'an exact monotone relation is learned')
  const bound = BoundCalibration.bind(file, [{ id: 'aesthetic', version: 'v1', sha256: A }], 'test')
  const c = bound.annotate({ aesthetic: { mean: 4.5 } }, { score: 4.5, weights: { aesthetic: 1 } }).scores['aesthetic']!.calibrated!
  t.ok(Math.abs(c - 5.5) < 0.2, `calibrated 4.5 → ${c.toFixed(2)} (raters' mean at the catalogue middle)`)
})

t.test('a bad file is refused with what is wrong', async (t) => {
  const { file } = buildCalibration(catalogue(10), { createdAt: '2026-12-01T00:00:00.000Z', tool: 'test' })
  const bad = (mutate: (f: any) => void) => {
    const f = JSON.parse(JSON.stringify(file))
    mutate(f)
    return () => parseCalibration(f, 'f.json')
  }
  t.throws(bad((f) => (f.kind = 'other')), { name: 'CalibrationError', message: /f\.json is not a nima-serve calibration: \/kind/ })
  t.throws(bad((f) => f.models[0].quantiles.reverse()), /model aesthetic \(000000000000\) quantiles is not sorted/)
  t.throws(bad((f) => f.models.push(f.models[0])), /appears twice/)
  t.throws(bad((f) => (f.combined[0].weights = { aesthetic: 1 })), /weights for other models/)
  t.throws(bad((f) => (f.models[0].rater = { x: [2, 1], y: [1, 2], images: 2, ratings: 2, evaluation: null })), /rater map x knots must increase/)

  const dir = mkdtempSync(join(tmpdir(), 'nima-calfile-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  await t.rejects(readCalibration(join(dir, 'missing.json')), { name: 'CalibrationError', message: /missing\.json cannot be read \(ENOENT\)/ })
  writeFileSync(join(dir, 'broken.json'), '{"kind":')
  await t.rejects(readCalibration(join(dir, 'broken.json')), /is not JSON/)
  t.ok(new CalibrationError('x') instanceof Error)
})

t.test('calibrate CLI: usage and input errors', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'nima-calcli-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const io = () => {
    const o = { out: '', err: '' }
    return { o, io: { out: (l: string) => void (o.out += `${l}\n`), err: (l: string) => void (o.err += `${l}\n`), env: {} } }
  }
  const call = async (args: string[]) => {
    const { o, io: cliIo } = io()
    return { code: await runCalibrateCommand(args, cliIo), ...o }
  }
  t.equal((await call([])).code, 2, 'no arguments: usage')
  t.match((await call(['--help'])).out, /usage: nima-serve calibrate/)
  t.match(await call(['--output', 'x.json']), { code: 2, err: /--input is required/ })
  t.match(await call(['--input', 'r.jsonl']), { code: 2, err: /--output is required/ })
  t.match(await call(['--input', join(dir, 'none.jsonl'), '--output', join(dir, 'c.json')]), { code: 1, err: /cannot read --input .*none\.jsonl \(ENOENT\)/ })
  t.match(await call(['--input', 'r', '--output', 'c', '--weights', 'aesthetic']), { code: 2, err: /--weights: expected id=weight pairs/ })
  t.match(await call(['--input', 'r', '--output', 'c', '--folds', '1']), { code: 2, err: /--folds: expected an integer from 2/ })

  // Lines of a batch from before calibration existed (no models.<id>.sha256), and a failed line.
  const old = join(dir, 'old.jsonl')
  const line = { key: 'a', line: 1, sha256: sha(5), scores: { aesthetic: { mean: 5, std: 1, distribution: [] } }, combined: { score: 5, weights: { aesthetic: 0.6 } }, models: { aesthetic: { id: 'aesthetic', version: 'v1', task: 'aesthetic', synthetic: true } }, cached: false }
  writeFileSync(old, `${JSON.stringify(line)}\n${JSON.stringify({ key: 'b', line: 2, cached: false, error: { code: 'NIMA_UNDECODABLE_IMAGE', message: 'x' } })}\nnot json\n`)
  const r = await call(['--input', old, '--output', join(dir, 'c.json')])
  t.equal(r.code, 1)
  t.match(r.err, /3 lines read: 0 scored .* 1 failed, 1 not batch results, 1 without the model file's sha256/)
  t.match(r.err, /lack models\.<id>\.sha256 .* run `nima-serve batch` again/)

  // A working run on hand-made lines, with labels; the output is a valid calibration.
  const good = join(dir, 'good.jsonl')
  const lines = Array.from({ length: 12 }, (_, i) => ({ ...line, key: String(i), sha256: sha(100 + i), scores: { aesthetic: { mean: 4 + i / 10, std: 1, distribution: [] } }, models: { aesthetic: { ...line.models.aesthetic, sha256: A } } }))
  writeFileSync(good, lines.map((l) => JSON.stringify(l)).join('\n') + '\n')
  const labels = join(dir, 'labels.jsonl')
  writeFileSync(labels, lines.map((l, i) => JSON.stringify({ imageId: l.sha256, rater: 'r', rating: 1 + Math.floor(i * 0.8), histogram: null, group: `g${i % 3}` })).join('\n') + '\n')
  const ok = await call(['--input', good, '--output', join(dir, 'c.json'), '--labels', labels, '--weights', 'aesthetic=1'])
  t.equal(ok.code, 0, ok.err)
  t.match(ok.err, /aesthetic@v1 \(SYNTHETIC[^\n]*: 12 images/)
  t.match(ok.err, /warning: 12 images only/)
  t.match(ok.err, /held-out error \(3 folds over 3 groups, 12 images\)/)
  const written = parseCalibration(JSON.parse(readFileSync(join(dir, 'c.json'), 'utf8')), 'c.json')
  t.same(written.combined[0]!.weights, { aesthetic: 1 })
  t.equal(JSON.parse(ok.out).entries.length, 2)

  // Past --max-images: a uniform sample by image hash, never more than asked.
  const many = join(dir, 'many.jsonl')
  const images = Array.from({ length: 200 }, (_, i) => ({ ...lines[0]!, key: `m${i}`, sha256: createHash('sha256').update(String(i)).digest('hex') }))
  writeFileSync(many, images.map((l) => JSON.stringify(l)).join('\n') + '\n')
  const sampled = await call(['--input', many, '--output', join(dir, 's.json'), '--max-images', '50'])
  t.equal(sampled.code, 0, sampled.err)
  const kept = JSON.parse(sampled.out).entries[0].size
  t.ok(kept <= 50 && kept >= 10, `kept ${kept} of 200`)
  t.match(sampled.err, new RegExp(`more than 50 distinct images: kept a uniform sample of ${kept}`))
})
