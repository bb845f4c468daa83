/**
 * The whole loop on real photos: a labelled task the base model cannot know (controlled
 * degradations of the sample photos, rated by strength; see degradations.ts), split by
 * source photo, `nima-serve finetune` through its CLI entry, then the real service loading
 * the new model and scoring with it.
 */
import { cpSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { runFinetuneCommand } from '../../src/cli/finetune-command.js'
import type { EvaluationReport } from '../../src/finetune/finetune.js'
import { decodeModel, headPredict, readHead } from '../../src/finetune/head.js'
import { featureCacheFolder } from '../../src/finetune/features.js'
import { LabelStore } from '../../src/labels/store.js'
import { readManifest } from '../../src/models/manifest.js'
import { recordIo } from '../models/cli-io.js'
import { testModelsDir } from '../helpers/models.js'
import { startTestService } from '../helpers/service.js'
import { buildVariants, cleanSourcePhotos, storeVariants } from './degradations.js'

const dir = t.testdir()
const modelsDir = join(dir, 'models')
cpSync(await testModelsDir(), modelsDir, { recursive: true })
const dbPath = join(dir, 'labels.sqlite')
const cache = join(dir, 'cache')

const sources = cleanSourcePhotos()
const variants = await buildVariants(sources)
const store = await LabelStore.open(dbPath)
storeVariants(store, variants)
store.close()

// Strong weight decay and a large validation split: the synthetic backbone's features barely
// encode the degradations (see docs/labelling-and-finetuning.md), so the head must not chase noise.
const args = ['--base', 'aesthetic', '--labels', dbPath, '--models-dir', modelsDir, '--cache', cache, '--val-split', '0.3', '--test-split', '0.2', '--lr', '0.001', '--weight-decay', '100', '--patience', '40', '--seed', '1']

let report: EvaluationReport
let modelPath: string

t.test('finetune beats the base model on held-out photos', async (t) => {
  t.ok(sources.length >= 15, `${sources.length} clean source photos`)
  const io = recordIo()
  const started = performance.now()
  const code = await runFinetuneCommand(args, io)
  t.equal(code, 0, io.stderr)
  t.comment(io.stdout)
  t.comment(`finetune took ${((performance.now() - started) / 1000).toFixed(1)} s`)
  const line = io.lines.find((l) => l.startsWith('evaluation written to '))!
  report = JSON.parse(readFileSync(line.slice('evaluation written to '.length), 'utf8')) as EvaluationReport
  modelPath = report.model.path

  const test = report.metrics.test!
  t.ok(report.split.test.groups >= 3, `${report.split.test.groups} held-out source photos`)
  t.equal(report.split.train.groups + report.split.val.groups + report.split.test.groups, sources.length, 'split by source photo, every photo in one part')
  t.ok(test.finetuned.emd < test.base.emd, `held-out EMD ${test.finetuned.emd.toFixed(4)} < base ${test.base.emd.toFixed(4)}`)
  t.ok(test.finetuned.predStd > 10 * test.base.predStd, `predictions spread out: std ${test.finetuned.predStd.toFixed(3)} vs ${test.base.predStd.toFixed(4)}`)
  // Reported, not asserted: with a synthetic backbone the ranking of unseen photos is weak.
  for (const k of ['lcc', 'srcc', 'accuracy'] as const) t.type(test.finetuned[k], 'number', `${k} reported: base ${test.base[k].toFixed(3)}, fine-tuned ${test.finetuned[k].toFixed(3)}`)
  t.equal(report.data.images, variants.length, 'every variant is a distinct image')
  t.match(io.stdout, /split\s+n\s+model\s+EMD\s+LCC\s+SRCC/)
  t.ok(report.verification.featuresMaxAbsDiff === 0, 'the installed model computes the very same features')
  t.ok(report.verification.scoresMaxAbsDiff < 1e-4)
})

t.test('the new model: manifest, provenance, reproducibility', async (t) => {
  const manifest = await readManifest(join(modelPath, '..', 'manifest.json'))
  const base = await readManifest(join(await testModelsDir(), 'aesthetic', report.base.version, 'manifest.json'))
  t.match(manifest, { id: 'aesthetic-hotel', task: 'aesthetic', synthetic: true, output: { features: { name: 'features', size: 1024 } } })
  t.match(manifest.provenance, { kind: 'finetuned', baseModel: `aesthetic/${base.version}`, sourceSha256: base.sha256, dataSha256: report.data.dataSha256 })
  t.match(manifest.provenance.metrics, { test: { finetuned: { emd: report.metrics.test!.finetuned.emd } } })
  t.match(manifest.version, /^ft-[0-9a-f]{12}$/)

  // same labels, same options, same seed: same model, and every feature from the cache
  const io = recordIo()
  t.equal(await runFinetuneCommand(args, io), 0, io.stderr)
  const again = JSON.parse(readFileSync(io.lines.find((l) => l.startsWith('evaluation written to '))!.slice(22), 'utf8')) as EvaluationReport
  t.equal(again.model.sha256, report.model.sha256, 'bit-identical model')
  t.equal(again.features.computed, 0)
  t.equal(again.features.cached, report.data.images)
  t.match(featureCacheFolder(cache, base), new RegExp(`${base.sha256}-[0-9a-f]{12}$`))
})

t.test('the service loads it (MODELS=…,aesthetic-hotel) and ?models=aesthetic-hotel scores with it', async (t) => {
  const svc = await startTestService({ MODELS_DIR: modelsDir, MODELS: 'aesthetic,technical,aesthetic-hotel' })
  t.teardown(() => svc.server.shutdown())
  const head = readHead(decodeModel(readFileSync(modelPath)))
  const base = await readManifest(join(modelsDir, 'aesthetic', report.base.version, 'manifest.json'))
  const folder = featureCacheFolder(cache, base)
  for (const v of variants.slice(0, 3)) {
    const res = await fetch(`${svc.url}/score?models=aesthetic-hotel,aesthetic`, { method: 'POST', body: v.bytes, headers: { 'content-type': 'application/octet-stream' } })
    t.equal(res.status, 200)
    const body = (await res.json()) as any
    t.match(body.models['aesthetic-hotel'], { id: 'aesthetic-hotel', task: 'aesthetic', synthetic: true })
    const buf = readFileSync(join(folder, `${v.id}.f32`))
    const features = new Float32Array(buf.buffer, buf.byteOffset, 1024)
    const expected = headPredict(head, features)
    const got: number[] = body.scores['aesthetic-hotel'].distribution
    t.ok(got.every((p, k) => Math.abs(p - expected[k]!) < 1e-4), `${v.group}/${v.kind}: served distribution = trained head on the cached features`)
    t.not(body.scores['aesthetic-hotel'].mean, body.scores['aesthetic'].mean)
  }
  const models = (await (await fetch(`${svc.url}/models`)).json()) as any
  const entry = models.models.find((m: any) => m.id === 'aesthetic-hotel')
  t.match(entry, { default: false, synthetic: true, provenance: { kind: 'finetuned' } })
})
