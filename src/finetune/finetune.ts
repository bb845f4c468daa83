import { createHash } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { readVerifiedModel, scanModels, selectModel, type CatalogEntry } from '../models/catalog.js'
import { installModel, type InstalledModel } from '../model-tools/install.js'
import { loadDataset, type Dataset, type LabelledImage } from './dataset.js'
import { extractFeatures } from './features.js'
import { FinetuneError } from './finetune-error.js'
import { decodeModel, headPredict, readHead, replaceHead, type Head } from './head.js'
import { evaluate, type EvaluationMetrics } from './math.js'
import { splitByGroup } from './split.js'
import { DEFAULT_TRAIN_OPTIONS, trainHead, type EpochLog, type Sample, type TrainOptions } from './train.js'
import { decodeIntoTensor, ManifestModel } from '../models/model-pipeline.js'
import type { ImageAdmission } from '../imaging/admission.js'

/**
 * `nima-serve finetune`: labels → features of the base backbone → a new head trained with
 * the EMD loss → evaluation of base vs fine-tuned on held-out groups → the backbone with
 * the new head installed as a new model, checked by running it.
 */
export interface FinetuneOptions {
  /** Base model id, or id/version, in modelsDir. */
  base: string
  /** Label database (SQLite) or export (JSONL/CSV). */
  labels: string
  imagesDir?: string
  modelsDir: string
  /** Where the new model is installed (a models folder). */
  outDir: string
  /** New model id; default `<base task>-hotel`. */
  id?: string
  version?: string
  ratingStd: number | 'auto'
  train: Omit<TrainOptions, 'onEpoch'>
  valFraction: number
  testFraction: number
  /** Feature cache folder; undefined disables it. */
  cacheDir?: string
  /** Where the photos are decoded: the service's image admission, with its settings (the CLI reads them from the environment). */
  admission: ImageAdmission
  /** Where the evaluation JSON goes; default evaluation.json in the new model's folder. */
  reportPath?: string
  log?: (line: string) => void
  onEpoch?: (log: EpochLog) => void
  now?: Date
}

export interface SplitReport {
  images: number
  groups: number
}

export interface EvaluationReport {
  base: { id: string; version: string; sha256: string; synthetic: boolean }
  model: { id: string; version: string; sha256: string; path: string }
  data: { source: string; kind: string; dataSha256: string; images: number; ratings: number; ratingStd: Dataset['ratingStd'] }
  split: { seed: number; train: SplitReport; val: SplitReport; test: SplitReport }
  training: { options: Omit<TrainOptions, 'onEpoch'>; bestEpoch: number; epochsRun: number; stoppedEarly: boolean; bestValEmd: number | null; seconds: number }
  features: { cached: number; computed: number; seconds: number }
  /** Base and fine-tuned metrics per split ('test' is the held-out verdict). */
  metrics: Record<'train' | 'val' | 'test', { base: EvaluationMetrics; finetuned: EvaluationMetrics } | null>
  /** Max |difference| between the installed model's outputs and the training code's, on a few test images. */
  verification: { images: number; featuresMaxAbsDiff: number; scoresMaxAbsDiff: number }
}

export interface FinetuneResult {
  report: EvaluationReport
  installed: InstalledModel
  reportPath: string
  table: string
}

/** The base model entry: `id` (best version, as the service picks it) or `id/version`. */
export async function findBase(modelsDir: string, base: string): Promise<CatalogEntry> {
  const { entries } = await scanModels(modelsDir)
  const [id, version] = base.split('/')
  const entry = version === undefined ? selectModel(entries, id!) : entries.find((e) => e.manifest.id === id && e.manifest.version === version)
  if (!entry) {
    const have = [...new Set(entries.map((e) => `${e.manifest.id}/${e.manifest.version}`))].join(', ') || 'none'
    throw new FinetuneError(`base model ${base} not found in ${modelsDir} (found: ${have})`)
  }
  return entry
}

function fmt(x: number | null | undefined, digits = 4): string {
  return x === null || x === undefined || Number.isNaN(x) ? '—' : x.toFixed(digits)
}

/** The evaluation as a fixed-width text table. */
export function formatTable(metrics: EvaluationReport['metrics']): string {
  const head = ['split', 'n', 'model', 'EMD', 'LCC', 'SRCC', 'acc(>=5)', 'std(pred)', 'std(label)', 'MAE']
  const rows: string[][] = [head]
  for (const split of ['train', 'val', 'test'] as const) {
    const m = metrics[split]
    if (!m) continue
    for (const which of ['base', 'finetuned'] as const) {
      const r = m[which]
      rows.push([split, String(r.n), which, fmt(r.emd), fmt(r.lcc, 3), fmt(r.srcc, 3), fmt(r.accuracy, 3), fmt(r.predStd, 3), fmt(r.labelStd, 3), fmt(r.mae, 3)])
    }
  }
  const widths = head.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)))
  return rows.map((r) => r.map((v, c) => (c < 3 ? v.padEnd(widths[c]!) : v.padStart(widths[c]!))).join('  ')).join('\n')
}

function toSamples(images: readonly LabelledImage[], features: Map<string, Float32Array>): Sample[] {
  return images.map((img) => ({ features: features.get(img.id)!, target: img.target }))
}

function metricsFor(base: Head, tuned: Head, samples: readonly Sample[]): { base: EvaluationMetrics; finetuned: EvaluationMetrics } | null {
  if (samples.length === 0) return null
  const labels = samples.map((s) => s.target)
  return {
    base: evaluate(samples.map((s) => headPredict(base, s.features)), labels),
    finetuned: evaluate(samples.map((s) => headPredict(tuned, s.features)), labels),
  }
}

/** JSON cannot hold NaN; metrics of degenerate splits (constant labels) carry null instead. */
function jsonSafe<T>(value: T): T {
  return JSON.parse(JSON.stringify(value, (_k, v) => (typeof v === 'number' && !Number.isFinite(v) ? null : v))) as T
}

/**
 * Runs the installed model on a few images and compares with the training code: the
 * `features` output must equal the base model's (the backbone is untouched) and `scores`
 * must equal softmax(features·W + b) of the trained head.
 */
async function verifyInstalled(
  installed: InstalledModel,
  head: Head,
  images: readonly LabelledImage[],
  features: Map<string, Float32Array>,
  admission: ImageAdmission,
): Promise<EvaluationReport['verification']> {
  const model = await ManifestModel.open(installed.modelPath, installed.manifest, { providers: ['cpu'], intraOpThreads: 0, interOpThreads: 1 })
  try {
    const input = model.batchBuffer(images.length)
    for (const [i, img] of images.entries()) await decodeIntoTensor(admission, Buffer.from(await img.load()), model.spec, input, i)
    const out = await model.run(input, images.length, ['features', 'scores'])
    let featuresMaxAbsDiff = 0
    let scoresMaxAbsDiff = 0
    for (const [i, img] of images.entries()) {
      const f = out['features']!.subarray(i * head.inputs, (i + 1) * head.inputs)
      const base = features.get(img.id)!
      for (let k = 0; k < f.length; k++) featuresMaxAbsDiff = Math.max(featuresMaxAbsDiff, Math.abs(f[k]! - base[k]!))
      const expected = headPredict(head, base)
      const s = out['scores']!.subarray(i * head.outputs, (i + 1) * head.outputs)
      for (let k = 0; k < s.length; k++) scoresMaxAbsDiff = Math.max(scoresMaxAbsDiff, Math.abs(s[k]! - expected[k]!))
    }
    return { images: images.length, featuresMaxAbsDiff, scoresMaxAbsDiff }
  } finally {
    await model.dispose()
  }
}

export async function finetune(options: FinetuneOptions): Promise<FinetuneResult> {
  const log = options.log ?? (() => {})
  const { admission } = options
  const base = await findBase(options.modelsDir, options.base)
  const baseBytes = await readVerifiedModel(base)
  const baseHead = readHead(decodeModel(baseBytes))
  const id = options.id ?? `${base.manifest.task}-hotel`
  if (!/^[a-z][a-z0-9-]*$/.test(id)) throw new FinetuneError(`--id: expected lowercase letters, digits and -, starting with a letter, got ${JSON.stringify(id)}`, { usage: true })
  log(`base: ${base.manifest.id}/${base.manifest.version}${base.manifest.synthetic ? ' (SYNTHETIC weights)' : ''} sha256 ${base.manifest.sha256.slice(0, 12)}…`)

  const dataset = await loadDataset(options.labels, { ratingStd: options.ratingStd, ...(options.imagesDir ? { imagesDir: options.imagesDir } : {}) })
  try {
    if (dataset.images.length < 3) throw new FinetuneError(`${options.labels} has ${dataset.images.length} labelled images; fine-tuning needs at least 3`)
    const σ = dataset.ratingStd
    log(`labels: ${dataset.records.length} ratings of ${dataset.images.length} images from ${dataset.source.path}; rating σ = ${σ.sigma.toFixed(3)} (${σ.source}${σ.source === 'data' ? `, ${σ.dof} dof` : ''})`)

    const split = splitByGroup(dataset.images, (i) => i.group, { testFraction: options.testFraction, valFraction: options.valFraction, seed: options.train.seed })
    const groups = (xs: LabelledImage[]) => new Set(xs.map((x) => x.group)).size
    const part = (xs: LabelledImage[]) => `${plural(xs.length, 'image')} / ${plural(groups(xs), 'group')}`
    log(`split by group (seed ${options.train.seed}): train ${part(split.train)}, val ${part(split.val)}, test ${part(split.test)}`)
    if (split.train.length === 0) throw new FinetuneError('the split left no training images; lower --val-split/--test-split or label more groups')
    for (const warning of splitWarnings(dataset.images.length, groups(dataset.images), split, options)) log(`warning: ${warning}`)

    let lastPct = -1
    const feats = await extractFeatures(
      dataset.images.map((i) => ({ id: i.id, load: i.load })),
      {
        modelPath: base.modelPath,
        manifest: base.manifest,
        admission,
        ...(options.cacheDir !== undefined ? { cacheDir: options.cacheDir } : {}),
        onProgress: (done, total) => {
          const pct = Math.floor((100 * done) / total / 10) * 10
          if (pct !== lastPct) {
            lastPct = pct
            log(`features: ${done}/${total}`)
          }
        },
      },
    )
    log(`features: ${feats.cached} cached, ${feats.computed} computed in ${feats.seconds.toFixed(1)} s${feats.computed > 0 ? ` (${(feats.computed / feats.seconds).toFixed(1)} img/s)` : ''}`)

    const train = toSamples(split.train, feats.features)
    const val = toSamples(split.val, feats.features)
    const test = toSamples(split.test, feats.features)
    const trainOptions = { ...DEFAULT_TRAIN_OPTIONS, ...options.train }
    const t0 = performance.now()
    const result = trainHead(baseHead, train, val, { ...trainOptions, ...(options.onEpoch ? { onEpoch: options.onEpoch } : {}) })
    const trainSeconds = (performance.now() - t0) / 1000
    const epochsRun = result.history.length - 1
    log(
      `training: ${epochsRun} epochs in ${trainSeconds.toFixed(1)} s, best epoch ${result.bestEpoch}` +
        (val.length > 0 ? ` (val EMD ${result.history[0]!.valEmd.toFixed(4)} → ${result.bestValEmd.toFixed(4)})` : '') +
        (result.stoppedEarly ? ', stopped early' : ''),
    )

    const metrics = {
      train: metricsFor(baseHead, result.head, train),
      val: metricsFor(baseHead, result.head, val),
      test: metricsFor(baseHead, result.head, test),
    }

    const version =
      options.version ??
      `ft-${createHash('sha256')
        .update(JSON.stringify({ base: base.manifest.sha256, data: dataset.dataSha256, train: trainOptions, val: options.valFraction, test: options.testFraction }))
        .digest('hex')
        .slice(0, 12)}`
    const onnx = replaceHead(baseBytes, result.head, {
      metadata: { finetuned_from: `${base.manifest.id}/${base.manifest.version}`, finetuned_data_sha256: dataset.dataSha256 },
    })
    const summaryMetrics = jsonSafe({
      test: metrics.test,
      split: { train: train.length, val: val.length, test: test.length },
      ratingStd: σ.sigma,
      bestEpoch: result.bestEpoch,
      train: trainOptions,
    })
    const installed = await installModel({
      dir: options.outDir,
      id,
      version,
      task: base.manifest.task,
      onnx,
      // A fine-tune of a synthetic backbone is still meaningless at heart.
      synthetic: base.manifest.synthetic,
      provenance: {
        kind: 'finetuned',
        baseModel: `${base.manifest.id}/${base.manifest.version}`,
        sourceSha256: base.manifest.sha256,
        dataSha256: dataset.dataSha256,
        metrics: summaryMetrics,
        notes: `head retrained with the EMD loss on ${dataset.images.length} labelled images (${dataset.source.kind}); backbone unchanged`,
      },
      ...(options.now ? { now: options.now } : {}),
    })

    const check = [...split.test, ...split.val, ...split.train].slice(0, 4)
    const verification = await verifyInstalled(installed, result.head, check, feats.features, admission)
    if (verification.featuresMaxAbsDiff > 1e-4 || verification.scoresMaxAbsDiff > 1e-4) {
      throw new FinetuneError(
        `the installed model ${installed.modelPath} does not reproduce the trained head (features Δ ${verification.featuresMaxAbsDiff}, scores Δ ${verification.scoresMaxAbsDiff})`,
      )
    }

    const report: EvaluationReport = jsonSafe({
      base: { id: base.manifest.id, version: base.manifest.version, sha256: base.manifest.sha256, synthetic: base.manifest.synthetic },
      model: { id, version, sha256: installed.manifest.sha256, path: installed.modelPath },
      data: {
        source: dataset.source.path,
        kind: dataset.source.kind,
        dataSha256: dataset.dataSha256,
        images: dataset.images.length,
        ratings: dataset.records.length,
        ratingStd: σ,
      },
      split: {
        seed: options.train.seed,
        train: { images: split.train.length, groups: groups(split.train) },
        val: { images: split.val.length, groups: groups(split.val) },
        test: { images: split.test.length, groups: groups(split.test) },
      },
      training: {
        options: trainOptions,
        bestEpoch: result.bestEpoch,
        epochsRun,
        stoppedEarly: result.stoppedEarly,
        bestValEmd: val.length > 0 ? result.bestValEmd : null,
        seconds: trainSeconds,
      },
      features: { cached: feats.cached, computed: feats.computed, seconds: feats.seconds },
      metrics,
      verification,
    })
    const reportPath = options.reportPath ?? join(installed.dir, 'evaluation.json')
    await writeFile(reportPath, `${JSON.stringify(report, null, 2)}\n`)
    return { report, installed, reportPath, table: formatTable(metrics) }
  } finally {
    dataset.close()
  }
}

/** "1 group", "3 groups". */
export function plural(n: number, noun: string): string {
  return `${n} ${noun}${n === 1 ? '' : 's'}`
}

/**
 * idealo's finding was that a few hundred domain-labelled photos fix the base model's
 * habit of squeezing scores into 4–6; far fewer mostly fit noise.
 */
export const FEW_LABELLED_IMAGES = 200

/** What a user should know about the data before trusting the result. */
export function splitWarnings(
  images: number,
  groups: number,
  split: { val: readonly unknown[]; test: readonly unknown[] },
  fractions: { valFraction: number; testFraction: number },
): string[] {
  const out: string[] = []
  if (images < FEW_LABELLED_IMAGES) {
    out.push(`only ${plural(images, 'labelled image')}: a few hundred are needed before a fine-tuned head generalises; treat this result as a trial run`)
  }
  if (fractions.testFraction > 0 && split.test.length === 0) {
    out.push(`no test split although --test-split is ${fractions.testFraction}: ${plural(groups, 'group')} cannot spare one; nothing will be evaluated on held-out photos`)
  }
  if (fractions.valFraction > 0 && split.val.length === 0) {
    out.push(`no validation split although --val-split is ${fractions.valFraction}: too few groups; training runs its full epochs without early stopping`)
  }
  return out
}
