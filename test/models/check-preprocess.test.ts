/**
 * `nima-serve models check-preprocess`: the figures' maths (pure), and the command on a
 * few sample photos with the synthetic test models, one of them re-encoded at 12 MP so the
 * fast decode really shrinks on load.
 */
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import sharp from 'sharp'
import t from 'tap'
import { runCli } from '../../src/cli/run-cli.js'
import { agreement, placesByScore } from '../../src/scoring/preprocess-check.js'
import { testModelsDir } from '../helpers/models.js'
import { sharedImages } from '../helpers/paths.js'
import { recordIo } from './cli-io.js'

t.test('places and agreement', async (t) => {
  t.same(placesByScore([5, 7, 6]), [3, 1, 2], 'best first')
  t.same(placesByScore([5, 5, 4]), [1, 2, 3], 'a tie keeps the folder order')
  const same = agreement(['a', 'b', 'c'], [5, 7, 6], [5, 7, 6])
  t.same(same, { images: 3, maxAbsDeltaMean: 0, meanAbsDeltaMean: 0, worst: 'a', spearman: 1, largestRankChange: { photo: 'a', exact: 3, fast: 3 } })
  const swapped = agreement(['a', 'b', 'c', 'd'], [4, 5, 6, 7], [4.1, 5, 6, 3.9])
  t.equal(swapped.worst, 'd')
  t.ok(Math.abs(swapped.maxAbsDeltaMean - 3.1) < 1e-12)
  t.ok(Math.abs(swapped.meanAbsDeltaMean - 3.2 / 4) < 1e-12)
  t.same(swapped.largestRankChange, { photo: 'd', exact: 1, fast: 4 }, 'the best photo fell to last')
  t.ok(Math.abs(swapped.spearman - -0.2) < 1e-12, `reversed in part: ${swapped.spearman}`)
  t.equal(agreement(['a'], [5], [6]).spearman, 1, 'one photo: nothing to reorder')
  t.throws(() => agreement([], [], []), RangeError)
})

t.test('the command scores a folder both ways and reports each installed model', async (t) => {
  const photos = mkdtempSync(join(tmpdir(), 'check-preprocess-'))
  t.teardown(() => rmSync(photos, { recursive: true, force: true }))
  for (const name of ['42039.jpg', '42040.jpg', 'aesthetic1.jpg']) copyFileSync(join(sharedImages, 'idealo', name), join(photos, name))
  writeFileSync(join(photos, 'large.jpg'), await sharp(join(sharedImages, 'idealo/42041.jpg')).resize(4000, 3000, { fit: 'fill' }).jpeg({ quality: 90 }).toBuffer())
  writeFileSync(join(photos, 'broken.jpg'), Buffer.from('not an image'))
  const io = recordIo()
  t.equal(await runCli(['models', 'check-preprocess', '--dir', await testModelsDir(), '--photos', photos], io), 0, io.stderr)
  const rows = io.lines.filter((l) => /^(aesthetic|technical)\//.test(l)).map((l) => l.split('\t'))
  t.same(rows.map((r) => r[0]!.split('/')[0]).sort(), ['aesthetic', 'technical'])
  for (const r of rows) {
    t.match(r[0], / SYNTHETIC$/)
    t.equal(r[1], '4', 'four photos scored; the broken one skipped')
    const [max, mean, rho] = [Number(r[2]), Number(r[3]), Number(r[4])]
    t.ok(max > 0 && mean > 0 && mean <= max, `|Δmean| measured: max ${max}, mean ${mean}`)
    t.ok(rho >= -1 && rho <= 1)
    t.match(r[5], /^\d+ \(.+: \d → \d\)$/)
  }
  t.match(io.stderr, /skipped .*broken\.jpg/)
  t.match(io.stdout, /SYNTHETIC models .* nothing about real scores/)
  const missing = recordIo()
  t.equal(await runCli(['models', 'check-preprocess', '--dir', await testModelsDir()], missing), 2)
  t.match(missing.stderr, /--photos DIR is required/)
})
