/**
 * SCORE_CALIBRATION in the service and the batch CLI: nothing changes without it; with it,
 * percentiles, GET /models, /rank minPercentile (and what it refuses), a calibration for
 * other model files refused at start (a real process) and on reload (the old one kept).
 */
import { execFile } from 'node:child_process'
import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { runBatchCommand } from '../../src/cli/batch-command.js'
import { makeCalibration } from '../helpers/calibration.js'
import { testModelsDir } from '../helpers/models.js'
import { projectRoot, samplePhotos } from '../helpers/paths.js'
import { startTestService } from '../helpers/service.js'

const photos = samplePhotos().filter((p) => /\/(idealo|tid2013)\//.test(p)).slice(0, 12)

/** Every key path of a JSON value, in order (arrays: their first element), for shape comparisons. */
function shape(value: unknown, prefix = ''): string[] {
  if (Array.isArray(value)) return value.length > 0 && typeof value[0] === 'object' ? shape(value[0], `${prefix}[]`) : [`${prefix}[]`]
  if (value === null || typeof value !== 'object') return []
  return Object.entries(value).flatMap(([k, v]) => [`${prefix}.${k}`, ...(k === 'scores' || k === 'models' || k === 'weights' ? shape(Object.values(v as object)[0], `${prefix}.${k}.*`) : shape(v, `${prefix}.${k}`))])
}

async function rankUploads(url: string, files: readonly string[], options?: object): Promise<{ status: number; body: any }> {
  const form = new FormData()
  for (const f of files) form.append('image', new Blob([readFileSync(f)]), f.split('/').pop())
  if (options) form.append('options', JSON.stringify(options))
  const res = await fetch(`${url}/rank`, { method: 'POST', body: form })
  return { status: res.status, body: await res.json() }
}

const scoreUpload = async (url: string, file: string) =>
  (await fetch(`${url}/score`, { method: 'POST', body: readFileSync(file), headers: { 'content-type': 'application/octet-stream' } })).json() as Promise<any>

t.test('without SCORE_CALIBRATION the answers are shaped exactly as before', async (t) => {
  const svc = await startTestService()
  t.teardown(() => svc.server.shutdown())
  const score = await scoreUpload(svc.url, photos[0]!)
  t.same(shape(score), [
    '.requestId', '.image', '.image.id', '.image.width', '.image.height', '.image.format', '.image.bytes', '.image.preprocess', '.image.phash', '.image.phashCrops', '.image.phashCrops[]',
    '.scores', '.scores.*.mean', '.scores.*.std', '.scores.*.distribution', '.scores.*.distribution[]',
    '.combined', '.combined.score', '.combined.weights',
    '.models', '.models.*.id', '.models.*.version', '.models.*.task', '.models.*.synthetic', '.models.*.provider',
    '.cache', '.cache.result', '.timings', '.timings.decodeMs', '.timings.inferenceMs', '.timings.totalMs',
  ])
  const rank = await rankUploads(svc.url, photos.slice(0, 2))
  t.equal(rank.status, 200)
  t.same(Object.keys(rank.body), ['requestId', 'ranked', 'failed', 'weights', 'models', 'nearDuplicates', 'timings'])
  t.same(Object.keys(rank.body.ranked[0]), ['rank', 'image', 'combined', 'scores', 'cache', 'duplicates', 'nearDuplicates', 'id', 'part'])
  t.same(Object.keys(rank.body.ranked[0].combined), ['score', 'weights'])
  t.same(Object.keys(rank.body.ranked[0].scores.aesthetic), ['mean', 'std', 'distribution'])
  const models = (await (await fetch(`${svc.url}/models`)).json()) as any
  t.notOk(models.models.some((m: any) => 'calibration' in m), 'GET /models: no calibration field')
  const metrics = await (await fetch(`${svc.url}/metrics`)).text()
  t.match(metrics, /^nima_score_mean_count\{model="aesthetic"\} 3$/m, 'served means are counted with or without a calibration')
  t.notMatch(metrics, /^nima_score_drift\{/m, 'no drift without a calibration to compare with')
  const refused = await rankUploads(svc.url, photos.slice(0, 2), { minPercentile: 20 })
  t.equal(refused.status, 409)
  t.equal(refused.body.error.code, 'NIMA_NOT_CALIBRATED')
  t.match(refused.body.error.message, /without SCORE_CALIBRATION/)
})

t.test('with SCORE_CALIBRATION', async (t) => {
  const made = await makeCalibration(photos)
  t.teardown(() => rmSync(made.dir, { recursive: true, force: true }))

  t.test('the service: percentiles, GET /models, minPercentile', async (t) => {
    const svc = await startTestService({ SCORE_CALIBRATION: made.calibration })
    t.teardown(() => svc.server.shutdown())
    const score = await scoreUpload(svc.url, photos[1]!)
    for (const id of ['aesthetic', 'technical']) t.ok(score.scores[id].percentile >= 0 && score.scores[id].percentile <= 100, `${id} percentile ${score.scores[id].percentile}`)
    t.type(score.combined.percentile, 'number', 'combined percentile: the default weights are the calibrated ones')
    t.notOk('calibrated' in score.combined, 'no rater map, no calibrated')

    const onlyAesthetic = await (await fetch(`${svc.url}/score?models=aesthetic`, { method: 'POST', body: readFileSync(photos[1]!), headers: { 'content-type': 'application/octet-stream' } })).json() as any
    t.type(onlyAesthetic.scores.aesthetic.percentile, 'number')
    t.notOk('percentile' in onlyAesthetic.combined, 'a combined score of other models has no percentile')

    const models = (await (await fetch(`${svc.url}/models`)).json()) as any
    for (const m of models.models) t.same(Object.keys(m.calibration ?? {}), ['createdAt', 'size', 'raterMap', 'synthetic'], `GET /models: ${m.id} calibration`)

    const all = await rankUploads(svc.url, photos, { minPercentile: 50, nearDuplicates: { enabled: false } })
    t.equal(all.status, 200)
    const { ranked, excluded, failed } = all.body
    t.equal(ranked.length + excluded.length + failed.length, photos.length, 'every photo is ranked, excluded or failed: none silently lost')
    t.ok(excluded.length > 0 && ranked.length > 0, `${ranked.length} ranked, ${excluded.length} excluded`)
    t.ok(ranked.every((r: any) => r.combined.percentile >= 50), 'ranked: at or above minPercentile')
    t.ok(excluded.every((e: any) => e.combined.percentile < 50 && e.reason.code === 'BELOW_MIN_PERCENTILE'), 'excluded: below, with a stable code')
    t.same(excluded.map((e: any) => e.part), [...excluded.map((e: any) => e.part)].sort((a: number, b: number) => a - b), 'excluded in input order')
    t.same(ranked.map((r: any) => r.rank), ranked.map((_: unknown, i: number) => i + 1), 'ranks count the kept photos only')

    const proportional = await rankUploads(svc.url, photos.slice(0, 3), { minPercentile: 0, weights: { aesthetic: 3, technical: 2 } })
    t.equal(proportional.status, 200, 'weights proportional to the calibrated ones give the same combined score')
    t.same(proportional.body.excluded, [], 'minPercentile 0 excludes nothing')
    const other = await rankUploads(svc.url, photos.slice(0, 3), { minPercentile: 10, weights: { aesthetic: 1, technical: 1 } })
    t.equal(other.status, 409)
    t.equal(other.body.error.code, 'NIMA_NOT_CALIBRATED')
    t.match(other.body.error.message, /aesthetic=1,technical=1.*aesthetic=0\.6,technical=0\.4/)
  })

  t.test('batch lines carry the same fields', async (t) => {
    const out = join(made.dir, 'again.jsonl')
    let err = ''
    const io = { out: () => {}, err: (l: string) => void (err += l), env: { MODELS_DIR: await testModelsDir(), LOG_LEVEL: 'warn', SCORE_CALIBRATION: made.calibration } }
    t.equal(await runBatchCommand(['--input', join(made.dir, 'photos.txt'), '--output', out, '--no-cache'], io), 0, err)
    const lines = readFileSync(out, 'utf8').trim().split('\n').map((l) => JSON.parse(l))
    t.ok(lines.every((l) => typeof l.scores.aesthetic.percentile === 'number' && typeof l.combined.percentile === 'number'), 'percentiles in every line')
    const first = JSON.parse(readFileSync(made.results, 'utf8').split('\n')[0]!)
    t.notOk('percentile' in first.scores.aesthetic, 'the lines of a run without the calibration have none')
  })

  t.test('a calibration for other model files is refused', async (t) => {
    const other = JSON.parse(readFileSync(made.calibration, 'utf8'))
    for (const m of other.models) m.sha256 = m.sha256.replace(/^./, (c: string) => (c === '0' ? '1' : '0'))
    const otherPath = join(made.dir, 'other.json')
    writeFileSync(otherPath, JSON.stringify(other))

    // At start: the process exits with the reason.
    const child = await promisify(execFile)(process.execPath, ['--import', 'tsx', join(projectRoot, 'src/main.ts')], {
      cwd: projectRoot,
      env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOST: '127.0.0.1', PORT: '0', MODELS_DIR: await testModelsDir(), SCORE_CALIBRATION: otherPath, LOG_LEVEL: 'warn' },
      timeout: 60_000,
    }).then(
      () => ({ code: 0, stdout: '' }),
      (e: { code: number; stdout: string }) => ({ code: e.code, stdout: e.stdout }),
    )
    t.equal(child.code, 1, 'exit status 1')
    t.match(child.stdout, /SCORE_CALIBRATION refused, not starting: SCORE_CALIBRATION [^ ]+other\.json matches none of the loaded models: it calibrates aesthetic@/)

    // The batch CLI refuses it too.
    let err = ''
    const io = { out: () => {}, err: (l: string) => void (err += l), env: { MODELS_DIR: await testModelsDir(), LOG_LEVEL: 'warn', SCORE_CALIBRATION: otherPath } }
    t.equal(await runBatchCommand(['--input', join(made.dir, 'photos.txt'), '--output', join(made.dir, 'refused.jsonl'), '--no-cache'], io), 1)
    t.match(err, /matches none of the loaded models/)

    // On reload: the previous calibration keeps serving, and the report says why.
    const live = join(made.dir, 'live.json')
    writeFileSync(live, readFileSync(made.calibration))
    const svc = await startTestService({ SCORE_CALIBRATION: live })
    t.teardown(() => svc.server.shutdown())
    writeFileSync(live, JSON.stringify(other))
    const failed = await svc.server.models.reload('http')
    t.equal(failed.outcome, 'failed')
    t.match(failed.error, /matches none of the loaded models/)
    t.same(failed.calibration, { outcome: 'failed', file: live })
    t.type((await scoreUpload(svc.url, photos[2]!)).combined.percentile, 'number', 'the previous calibration still applies')
    writeFileSync(live, '{"kind": "nima-serve-calibration"')
    t.match((await svc.server.models.reload('http')).error, /is not JSON/)

    // A new calibration of the same models replaces the old one without touching the models.
    const renewed = JSON.parse(readFileSync(made.calibration, 'utf8'))
    renewed.createdAt = '2030-01-01T00:00:00.000Z'
    writeFileSync(live, JSON.stringify(renewed))
    const ok = await svc.server.models.reload('http')
    t.equal(ok.outcome, 'unchanged', 'the models are unchanged')
    t.same(ok.calibration, { outcome: 'reloaded', file: live, createdAt: '2030-01-01T00:00:00.000Z', models: ['aesthetic', 'technical'] })
    t.equal(((await (await fetch(`${svc.url}/models`)).json()) as any).models[0].calibration.createdAt, '2030-01-01T00:00:00.000Z', 'GET /models shows the new one')
    t.equal((await svc.server.models.reload('http')).calibration?.outcome, 'unchanged', 'the same content again: unchanged')
  })
})
