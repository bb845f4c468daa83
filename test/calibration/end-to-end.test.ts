/**
 * The chain for real: `nima-serve batch` and `nima-serve calibrate` as processes on the
 * sample photos, then the service with SCORE_CALIBRATION. The catalogue's best photo
 * reports a percentile ≥ 90, its worst ≤ 10, every photo about its rank; a calibration with
 * labels reports its held-out error and responses carry `calibrated`; /metrics carries the
 * score histogram and the drift gauge, which rises when only the worst photos are sent.
 *
 * The models are the synthetic test models: every number here checks the mechanism, none
 * means anything about the photos. The "raters" are simulated (a monotone function of the
 * catalogue rank plus noise), which is what lets the test know what the map must learn.
 */
import { execFile } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, dirname, join } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { projectRoot, samplePhotos } from '../helpers/paths.js'
import { testModelsDir } from '../helpers/models.js'
import { startTestService } from '../helpers/service.js'

const run = promisify(execFile)
const photos = samplePhotos()

/** `nima-serve <args>` from the sources, as a process. */
async function cli(args: string[], env: Record<string, string>): Promise<{ stdout: string; stderr: string }> {
  return run(process.execPath, ['--import', 'tsx', join(projectRoot, 'src/cli/main.ts'), ...args], {
    cwd: projectRoot,
    env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', ...env },
    maxBuffer: 16 * 1024 * 1024,
  })
}

interface Line {
  key: string
  sha256: string
  scores: Record<string, { mean: number }>
  combined: { score: number }
}

/** `name{labels} value` samples of one metric from the exposition text. */
function samples(body: string, name: string): { labels: string; value: number }[] {
  return body
    .split('\n')
    .filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `))
    .map((l) => {
      const m = /^[^{ ]+(\{[^}]*\})?\s+(\S+)/.exec(l)!
      return { labels: m[1] ?? '', value: Number(m[2]) }
    })
}

t.test('batch → calibrate → serve on the sample photos', { skip: photos.length < 20 ? 'needs ../shared/images' : false }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'nima-calibration-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const modelsDir = await testModelsDir()
  const env = { MODELS_DIR: modelsDir, LOG_LEVEL: 'warn' }

  // 1. The catalogue, scored offline.
  writeFileSync(join(dir, 'photos.txt'), photos.join('\n') + '\n')
  const results = join(dir, 'results.jsonl')
  await cli(['batch', '--input', join(dir, 'photos.txt'), '--output', results, '--no-cache'], env)
  const lines = readFileSync(results, 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Line & { line: number; models: Record<string, { sha256?: string }> })
    .sort((a, b) => a.line - b.line)
  t.equal(lines.length, photos.length, 'one line per photo')
  t.ok(lines.every((l) => /^[0-9a-f]{64}$/.test(l.models['aesthetic']?.sha256 ?? '')), 'batch lines name the model file by sha256')

  // The catalogue's own order: distinct images by combined score, mid-rank percentiles.
  const distinct = [...new Map(lines.map((l) => [l.sha256, l])).values()].sort((a, b) => a.combined.score - b.combined.score)
  const n = distinct.length
  const rankPercentile = new Map(distinct.map((l, i) => [l.sha256, (100 * (i + 0.5)) / n]))

  // 2. Calibrate, without and with labels.
  const calibration = join(dir, 'calibration.json')
  const plain = await cli(['calibrate', '--input', results, '--output', calibration], env)
  t.match(plain.stderr, new RegExp(`combined aesthetic=0\\.6,technical=0\\.4 \\(SYNTHETIC[^\\n]*: ${n} images`), 'calibrate reports the combined entry and its size')
  const file = JSON.parse(readFileSync(calibration, 'utf8'))
  t.equal(file.models.length, 2)
  t.equal(file.models[0].quantiles.length, 1001, 'a percentile to 0.1 point')
  t.same(file.combined[0].weights, { aesthetic: 0.6, technical: 0.4 })

  // Simulated raters: 3 ratings per image, a monotone function of the catalogue rank
  // (they use the whole 1..10 scale where the model uses a sliver of it) plus noise;
  // groups: the photo's folder and the parity of its rank.
  let noise = 7
  const jitter = () => ((noise = (noise * 1103515245 + 12345) % 2 ** 31) / 2 ** 31 - 0.5) * 2
  const labelRows = distinct.flatMap((l, i) =>
    [0, 1, 2].map((r) => ({
      imageId: l.sha256,
      rater: `rater-${r}`,
      rating: Math.min(10, Math.max(1, Math.round(1 + (9 * i) / (n - 1) + jitter()))),
      histogram: null,
      group: `${basename(dirname(l.key))}-${i % 2}`,
    })),
  )
  const labels = join(dir, 'labels.jsonl')
  writeFileSync(labels, labelRows.map((r) => JSON.stringify(r)).join('\n') + '\n')
  const withLabels = join(dir, 'calibration-labels.json')
  const labelled = await cli(['calibrate', '--input', results, '--output', withLabels, '--labels', labels], env)
  t.match(labelled.stderr, /held-out error \(\d+ folds over 6 groups, \d+ images\)/, 'calibrate reports the held-out error')
  const evaluation = JSON.parse(readFileSync(withLabels, 'utf8')).combined[0].rater.evaluation
  t.ok(evaluation.after.mae < evaluation.before.mae && evaluation.after.mae < evaluation.constant.mae, `the map beats the raw score and the mean rating on held-out groups (MAE ${evaluation.after.mae.toFixed(2)} vs ${evaluation.before.mae.toFixed(2)} and ${evaluation.constant.mae.toFixed(2)})`)
  t.comment(`held-out MAE / RMSE (simulated raters): raw score ${evaluation.before.mae.toFixed(2)} / ${evaluation.before.rmse.toFixed(2)}, mean rating ${evaluation.constant.mae.toFixed(2)} / ${evaluation.constant.rmse.toFixed(2)}, rater map ${evaluation.after.mae.toFixed(2)} / ${evaluation.after.rmse.toFixed(2)}`)

  // 3. Serve with the calibration (a small drift window, to fill it with few photos).
  const svc = await startTestService({ SCORE_CALIBRATION: withLabels, SCORE_DRIFT_WINDOW: 10 })
  t.teardown(() => svc.server.shutdown())
  const score = async (path: string) => {
    const res = await fetch(`${svc.url}/score`, { method: 'POST', body: readFileSync(path), headers: { 'content-type': 'application/octet-stream' } })
    t.equal(res.status, 200)
    return (await res.json()) as { image: { id: string }; scores: Record<string, { mean: number; percentile?: number; calibrated?: number }>; combined: { score: number; percentile?: number; calibrated?: number } }
  }
  let worstGap = 0
  const served = new Map<string, Awaited<ReturnType<typeof score>>>()
  for (const photo of photos) {
    const body = await score(photo)
    served.set(body.image.id, body)
    const expected = rankPercentile.get(body.image.id)!
    worstGap = Math.max(worstGap, Math.abs(body.combined.percentile! - expected))
    t.ok(typeof body.scores['aesthetic']?.percentile === 'number' && typeof body.scores['technical']?.percentile === 'number', 'each model has its percentile')
    t.ok(typeof body.combined.calibrated === 'number' && body.combined.calibrated >= 1 && body.combined.calibrated <= 10, 'calibrated: on the raters 1..10 scale')
  }
  const best = served.get(distinct[n - 1]!.sha256)!.combined.percentile!
  const worst = served.get(distinct[0]!.sha256)!.combined.percentile!
  t.ok(best >= 90, `the best photo of the catalogue: percentile ${best}`)
  t.ok(worst <= 10, `the worst photo: percentile ${worst}`)
  // A few points: the table's two ends are runs of equal values (half a photo's share), the rest is to 0.1.
  t.ok(worstGap <= 100 / n / 2 + 0.2, `every photo within ${worstGap.toFixed(2)} points of its rank in the catalogue (n = ${n})`)
  t.comment(`best ${best}, worst ${worst}, largest gap from the catalogue rank ${worstGap.toFixed(2)} points over ${n} distinct photos`)

  // 4. /metrics: the histogram, and the drift gauge once the window of 10 is full.
  const metrics = async () => (await fetch(`${svc.url}/metrics`)).text()
  const before = await metrics()
  const count = samples(before, 'nima_score_mean_count').find((s) => s.labels.includes('"aesthetic"'))
  t.equal(count?.value, photos.length, 'nima_score_mean counts every served aesthetic mean')
  const driftOf = (body: string, model: string) => samples(body, 'nima_score_drift').find((s) => s.labels.includes(`"${model}"`))?.value
  const baseline = driftOf(before, 'aesthetic')
  t.ok(baseline !== undefined && baseline >= 0 && baseline <= 1, `drift gauge present with a full window: ${baseline}`)

  // Only the catalogue's worst photos (by aesthetic mean, the model whose drift is read).
  const worstByAesthetic = [...distinct].sort((a, b) => a.scores['aesthetic']!.mean - b.scores['aesthetic']!.mean).slice(0, 10)
  const pathOf = new Map(lines.map((l) => [l.sha256, l.key]))
  for (const l of worstByAesthetic) await score(pathOf.get(l.sha256)!)
  const after = driftOf(await metrics(), 'aesthetic')!
  t.ok(after > baseline! && after >= 0.6, `drift rises when only the worst third is sent: ${baseline!.toFixed(3)} → ${after.toFixed(3)}`)
  t.comment(`nima_score_drift{model="aesthetic"}: ${baseline!.toFixed(3)} over the last 10 catalogue photos → ${after.toFixed(3)} after the 10 worst`)
})
