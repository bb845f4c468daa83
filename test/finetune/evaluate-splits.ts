/**
 * Base vs fine-tuned head over several group splits of one label database, to see how
 * much a single split's verdict depends on which photos were held out:
 *   npx tsx test/finetune/evaluate-splits.ts DB [--models-dir DIR] [--seeds 1-8] [--lr X] [--weight-decay X] [--val-split X] [--patience N]
 * Features come from (and go to) the same cache as `nima-serve finetune`.
 */
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { loadDataset } from '../../src/finetune/dataset.js'
import { extractFeatures } from '../../src/finetune/features.js'
import { findBase } from '../../src/finetune/finetune.js'
import { decodeModel, headPredict, readHead } from '../../src/finetune/head.js'
import { evaluate, type EvaluationMetrics } from '../../src/finetune/math.js'
import { loadConfig } from '../../src/config/load.js'
import { admissionOptions, ImageAdmission } from '../../src/imaging/admission.js'
import { splitByGroup } from '../../src/finetune/split.js'
import { DEFAULT_TRAIN_OPTIONS, trainHead } from '../../src/finetune/train.js'
import { testModelsDir } from '../helpers/models.js'

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    'models-dir': { type: 'string' },
    seeds: { type: 'string', default: '1-8' },
    lr: { type: 'string' },
    'weight-decay': { type: 'string' },
    'val-split': { type: 'string', default: '0.1' },
    'test-split': { type: 'string', default: '0.2' },
    patience: { type: 'string' },
    base: { type: 'string', default: 'aesthetic' },
  },
})
const db = positionals[0]
if (!db) throw new Error('usage: tsx test/finetune/evaluate-splits.ts DB [options]')
const [from, to] = values.seeds!.split('-').map(Number) as [number, number]
const base = await findBase(values['models-dir'] ?? (await testModelsDir()), values.base!)
const head0 = readHead(decodeModel(await readFile(base.modelPath)))
const data = await loadDataset(db, { ratingStd: 'auto' })
const admission = new ImageAdmission({ ...admissionOptions(loadConfig(), 1), decodeProcessStart: 'when-needed' })
const { features } = await extractFeatures(data.images, { modelPath: base.modelPath, manifest: base.manifest, cacheDir: join('.cache', 'finetune-features'), admission }).finally(() => admission.close())
const options = {
  ...DEFAULT_TRAIN_OPTIONS,
  ...(values.lr ? { learningRate: Number(values.lr) } : {}),
  ...(values['weight-decay'] ? { weightDecay: Number(values['weight-decay']) } : {}),
  ...(values.patience ? { patience: Number(values.patience) } : {}),
}

const keys = ['emd', 'lcc', 'srcc', 'accuracy', 'predStd'] as const
const rows: { seed: number; base: EvaluationMetrics; tuned: EvaluationMetrics }[] = []
for (let seed = from; seed <= (to ?? from); seed++) {
  const split = splitByGroup(data.images, (i) => i.group, { testFraction: Number(values['test-split']), valFraction: Number(values['val-split']), seed })
  const samples = (xs: typeof data.images) => xs.map((i) => ({ features: features.get(i.id)!, target: i.target }))
  const test = samples(split.test)
  const result = trainHead(head0, samples(split.train), samples(split.val), { ...options, seed })
  const labels = test.map((s) => s.target)
  rows.push({
    seed,
    base: evaluate(test.map((s) => headPredict(head0, s.features)), labels),
    tuned: evaluate(test.map((s) => headPredict(result.head, s.features)), labels),
  })
}
data.close()

const f = (x: number) => (Number.isNaN(x) ? '—' : x.toFixed(3))
const cols = keys.flatMap((k) => [`${k} base`, `${k} tuned`])
const w = Math.max(...cols.map((c) => c.length)) + 2
console.log(`seed  n   ${cols.map((c) => c.padStart(w)).join('')}`)
for (const r of rows) console.log(`${String(r.seed).padEnd(5)} ${String(r.tuned.n).padEnd(3)} ${keys.flatMap((k) => [f(r.base[k]), f(r.tuned[k])]).map((v) => v.padStart(w)).join('')}`)
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length
const sd = (xs: number[]) => Math.sqrt(mean(xs.map((x) => (x - mean(xs)) ** 2)))
console.log('\nmetric      base (mean ± sd)   fine-tuned (mean ± sd)')
for (const k of keys) {
  const b = rows.map((r) => r.base[k])
  const t = rows.map((r) => r.tuned[k])
  console.log(`${k.padEnd(10)}  ${mean(b).toFixed(3)} ± ${sd(b).toFixed(3)}      ${mean(t).toFixed(3)} ± ${sd(t).toFixed(3)}`)
}
console.log(`fine-tuned EMD below base on ${rows.filter((r) => r.tuned.emd < r.base.emd).length} of ${rows.length} splits`)
