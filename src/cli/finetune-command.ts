import { createWriteStream } from 'node:fs'
import { readdir, readFile, stat } from 'node:fs/promises'
import { basename, dirname, extname, join, relative, resolve } from 'node:path'
import { finished } from 'node:stream/promises'
import { parseArgs } from 'node:util'
import { FinetuneError } from '../finetune/finetune-error.js'
import { DEFAULT_TRAIN_OPTIONS } from '../finetune/train.js'
import { isNimaError } from '../errors.js'
import type { ImageAdmission } from '../imaging/admission.js'
import { EXPORT_FORMATS, csvHeader, formatRow, parseExport, type ExportFormat } from '../labels/export.js'
import { LabelStore } from '../labels/store.js'
import { cliConfig, reportFailure, type CliIo } from './io.js'
import { groupUsage, LABELS_COMMANDS, LABELS_FOOTER, subcommandUsage, wantsHelp } from './help.js'
import { imageAdmission } from './image-admission.js'

export const FINETUNE_USAGE = `usage: nima-serve finetune --base ID --labels FILE [options]

Trains a new score head on labelled photos and installs backbone + head as a new model.

  --base ID|ID/VERSION   base model in --models-dir (e.g. aesthetic)
  --labels FILE          label database (SQLite, from the labelling API) or an export (.jsonl/.csv)
  --images DIR           folder with the image files an export names (matched by sha256)
  --out DIR              models folder to install into (default: --models-dir)
  --models-dir DIR       where the base model is (default: $MODELS_DIR or ./models)
  --id ID                new model id (default: <base task>-hotel, e.g. aesthetic-hotel)
  --version V            new model version (default: ft-<hash of base, data and options>)
  --epochs N             most epochs (default ${DEFAULT_TRAIN_OPTIONS.epochs})
  --lr X                 Adam learning rate (default ${DEFAULT_TRAIN_OPTIONS.learningRate})
  --weight-decay X       decoupled weight decay of the kernel (default ${DEFAULT_TRAIN_OPTIONS.weightDecay})
  --batch-size N         mini-batch size (default ${DEFAULT_TRAIN_OPTIONS.batchSize})
  --patience N           early-stopping patience in epochs (default ${DEFAULT_TRAIN_OPTIONS.patience})
  --seed N               seed of the split and the shuffles (default ${DEFAULT_TRAIN_OPTIONS.seed})
  --val-split X          fraction of the non-test groups for early stopping (default 0.1)
  --test-split X         fraction of the groups held out for evaluation (default 0.2)
  --rating-std X|auto    spread σ given to a single rating (default auto: from raters' disagreement, else 1.4)
  --cache DIR            feature cache (default .cache/finetune-features; "none" disables it)
  --report FILE          evaluation JSON (default: evaluation.json beside the new model)`

export const LABELS_USAGE = groupUsage('labels', LABELS_COMMANDS, LABELS_FOOTER)

function usage(message: string, text: string): FinetuneError {
  return new FinetuneError(`${message}\n${text}`, { usage: true })
}

function num(name: string, text: string | undefined, check: (x: number) => boolean, expected: string, text0: string): number | undefined {
  if (text === undefined) return undefined
  const x = Number(text)
  if (text.trim() === '' || !Number.isFinite(x) || !check(x)) throw usage(`--${name}: expected ${expected}, got ${JSON.stringify(text)}`, text0)
  return x
}

/** Runs a command body, turning failures into a message and an exit code. */
async function guarded(prefix: string, io: CliIo, fn: () => Promise<number>): Promise<number> {
  try {
    return await fn()
  } catch (err) {
    return reportFailure(io, prefix, err)
  }
}

/** `nima-serve finetune ...`; returns the exit code (2 for usage errors, 1 for failures). */
export async function runFinetuneCommand(argv: readonly string[], io: CliIo): Promise<number> {
  return guarded('finetune', io, async () => {
    if (argv.length === 0 || argv[0] === 'help' || argv.includes('--help') || argv.includes('-h')) {
      io.out(FINETUNE_USAGE)
      return argv.length === 0 ? 2 : 0
    }
    let values: Record<string, string | undefined>
    try {
      const strs = ['base', 'labels', 'images', 'out', 'models-dir', 'id', 'version', 'epochs', 'lr', 'weight-decay', 'batch-size', 'patience', 'seed', 'val-split', 'test-split', 'rating-std', 'cache', 'report']
      values = parseArgs({ args: [...argv], options: Object.fromEntries(strs.map((s) => [s, { type: 'string' as const }])), strict: true, allowPositionals: false }).values as Record<string, string | undefined>
    } catch (err) {
      throw usage((err as Error).message, FINETUNE_USAGE)
    }
    if (!values['base']) throw usage('--base is required', FINETUNE_USAGE)
    if (!values['labels']) throw usage('--labels is required', FINETUNE_USAGE)
    const U = FINETUNE_USAGE
    const int = (x: number) => Number.isInteger(x)
    const d = DEFAULT_TRAIN_OPTIONS
    const train = {
      epochs: num('epochs', values['epochs'], (x) => int(x) && x >= 0, 'an integer >= 0', U) ?? d.epochs,
      learningRate: num('lr', values['lr'], (x) => x > 0, 'a positive number', U) ?? d.learningRate,
      weightDecay: num('weight-decay', values['weight-decay'], (x) => x >= 0, 'a number >= 0', U) ?? d.weightDecay,
      batchSize: num('batch-size', values['batch-size'], (x) => int(x) && x >= 1, 'an integer >= 1', U) ?? d.batchSize,
      patience: num('patience', values['patience'], (x) => int(x) && x >= 1, 'an integer >= 1', U) ?? d.patience,
      seed: num('seed', values['seed'], (x) => int(x) && x >= 0 && x <= 0xffffffff, 'an integer from 0 to 4294967295', U) ?? d.seed,
    }
    const fraction = (x: number) => x >= 0 && x < 1
    const valFraction = num('val-split', values['val-split'], fraction, 'a number from 0 to below 1', U) ?? 0.1
    const testFraction = num('test-split', values['test-split'], fraction, 'a number from 0 to below 1', U) ?? 0.2
    const stdText = values['rating-std'] ?? 'auto'
    const ratingStd = stdText === 'auto' ? 'auto' : num('rating-std', stdText, (x) => x > 0 && x <= 10, "a number in (0, 10] or 'auto'", U)!
    const modelsDir = values['models-dir'] ?? cliConfig(io).MODELS_DIR
    const cache = values['cache'] ?? join('.cache', 'finetune-features')

    const { finetune } = await import('../finetune/finetune.js')
    const started = performance.now()
    const admission = imageAdmission(io)
    const result = await finetune({
      base: values['base'],
      labels: values['labels'],
      ...(values['images'] ? { imagesDir: values['images'] } : {}),
      modelsDir,
      outDir: values['out'] ?? modelsDir,
      ...(values['id'] ? { id: values['id'] } : {}),
      ...(values['version'] ? { version: values['version'] } : {}),
      ratingStd,
      admission,
      train,
      valFraction,
      testFraction,
      ...(cache !== 'none' ? { cacheDir: cache } : {}),
      ...(values['report'] ? { reportPath: values['report'] } : {}),
      log: io.out,
    }).finally(() => admission.close())
    const { report, installed } = result
    io.out('')
    io.out(result.table)
    io.out('')
    const test = report.metrics.test
    if (test) {
      const better = test.finetuned.emd < test.base.emd
      io.out(`held-out test EMD: base ${test.base.emd.toFixed(4)} → fine-tuned ${test.finetuned.emd.toFixed(4)} (${better ? 'better' : 'NOT better'})`)
    } else {
      io.out(`no test split (${testFraction === 0 ? '--test-split 0' : 'too few groups to hold one out'}): nothing held out to evaluate on`)
    }
    io.out(`installed ${installed.manifest.id}/${installed.manifest.version}${installed.manifest.synthetic ? ' (SYNTHETIC backbone: scores carry no meaning)' : ''} at ${installed.modelPath}`)
    io.out(`evaluation written to ${result.reportPath}`)
    const outDir = values['out'] ?? modelsDir
    io.out(
      `serve it: MODELS=aesthetic,technical,${installed.manifest.id} MODELS_DIR=${outDir} npm start, then POST /score?models=${installed.manifest.id}` +
        (outDir === modelsDir ? '' : ` (MODELS_DIR must hold every model MODELS names: install the others into ${outDir} too)`),
    )
    io.out(`done in ${((performance.now() - started) / 1000).toFixed(1)} s`)
    return 0
  })
}

async function* walkFiles(path: string): AsyncGenerator<string> {
  const s = await stat(path)
  if (s.isFile()) {
    yield path
    return
  }
  for (const entry of (await readdir(path, { withFileTypes: true })).sort((a, b) => a.name.localeCompare(b.name))) {
    const p = join(path, entry.name)
    if (entry.isDirectory()) yield* walkFiles(p)
    else if (entry.isFile()) yield p
  }
}

function groupName(file: string, mode: string): string | null {
  if (mode === 'none') return null
  const raw = mode === 'file' ? basename(file, extname(file)) : basename(dirname(resolve(file)))
  const cleaned = raw.replace(/[^\p{L}\p{N}._@+ -]/gu, '_').slice(0, 64)
  return cleaned.length > 0 ? cleaned : null
}

/** What the labels store keeps of an image, decoded through the service's admission (as POST /label/images does). */
async function inspect(admission: ImageAdmission, bytes: Buffer) {
  return (await admission.pixels(bytes, { sizes: [] })).image
}

async function addImages(store: LabelStore, paths: readonly string[], group: string, admission: ImageAdmission, io: CliIo): Promise<number> {
  let added = 0
  let existing = 0
  let refused = 0
  for (const p of paths) {
    for await (const file of walkFiles(p)) {
      const bytes = await readFile(file)
      try {
        const img = await inspect(admission, bytes)
        const { created } = store.addImage({ id: img.id, data: bytes, format: img.format, width: img.width, height: img.height, group: groupName(file, group) })
        if (created) added++
        else existing++
      } catch (err) {
        refused++
        io.err(`skipped ${file}: ${isNimaError(err) ? `${err.code}: ` : ''}${(err as Error).message}`)
      }
    }
  }
  io.out(`${added} images added, ${existing} already present, ${refused} skipped; ${store.countImages()} images in ${store.path}`)
  return refused > 0 && added + existing === 0 ? 1 : 0
}

async function exportLabels(store: LabelStore, format: ExportFormat, out: string | undefined, withImages: string | undefined, io: CliIo): Promise<number> {
  const stream = out ? createWriteStream(out) : undefined
  const write = (s: string) => (stream ? stream.write(s) : io.out(s.replace(/\r?\n$/, '')))
  if (format === 'csv') write(csvHeader())
  let n = 0
  const written = new Set<string>()
  const { mkdir, writeFile } = await import('node:fs/promises')
  if (withImages) await mkdir(withImages, { recursive: true })
  for (const row of store.exportRows()) {
    let path: string | undefined
    if (withImages) {
      const file = join(withImages, `${row.imageId}.${row.format === 'jpeg' ? 'jpg' : row.format}`)
      if (!written.has(row.imageId)) {
        await writeFile(file, store.imageData(row.imageId)!)
        written.add(row.imageId)
      }
      path = relative(out ? dirname(resolve(out)) : process.cwd(), resolve(file))
    }
    write(formatRow({ ...row, ...(path ? { path } : {}) }, format))
    n++
  }
  if (stream) {
    stream.end()
    await finished(stream)
    io.out(`${n} ratings written to ${out}${withImages ? `, ${written.size} images to ${withImages}` : ''}`)
  }
  return 0
}

async function importLabels(store: LabelStore, file: string, imagesDir: string | undefined, admission: ImageAdmission, io: CliIo): Promise<number> {
  const rows = parseExport(await readFile(file, 'utf8'))
  const need = new Set(rows.filter((r) => !store.getImage(r.imageId) && !r.path).map((r) => r.imageId))
  const { indexImages } = await import('../finetune/dataset.js')
  const found = need.size > 0 && imagesDir ? await indexImages(imagesDir, need) : new Map<string, string>()
  let ratings = 0
  let missing = 0
  for (const r of rows) {
    if (!store.getImage(r.imageId)) {
      const path = r.path ? resolve(dirname(resolve(file)), r.path) : found.get(r.imageId)
      if (!path) {
        missing++
        continue
      }
      const bytes = await readFile(path)
      const img = await inspect(admission, bytes)
      if (img.id !== r.imageId) throw new FinetuneError(`${path} hashes to ${img.id}, the export says ${r.imageId}`)
      store.addImage({ id: img.id, data: bytes, format: img.format, width: img.width, height: img.height, group: r.group ?? null, sourceUrl: r.sourceUrl ?? null })
    }
    store.rate(r.rating !== null ? { imageId: r.imageId, rater: r.rater, rating: r.rating } : { imageId: r.imageId, rater: r.rater, histogram: r.histogram! })
    ratings++
  }
  io.out(`${ratings} ratings imported${missing > 0 ? `, ${missing} skipped (image not found; pass --images DIR)` : ''}`)
  return missing > 0 ? 1 : 0
}

/** `nima-serve labels <add-images|export|import|summary> ...`; returns the exit code. */
export async function runLabelsCommand(argv: readonly string[], io: CliIo): Promise<number> {
  return guarded('labels', io, async () => {
    const [command, ...rest] = argv
    if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
      io.out(LABELS_USAGE)
      return command === undefined ? 2 : 0
    }
    const help = wantsHelp(rest) ? subcommandUsage('labels', LABELS_COMMANDS, command, LABELS_FOOTER) : undefined
    if (help !== undefined) {
      io.out(help)
      return 0
    }
    if (!['add-images', 'export', 'import', 'summary'].includes(command)) throw usage(`unknown labels command ${JSON.stringify(command)}`, LABELS_USAGE)
    let parsed: { values: Record<string, string | undefined>; positionals: string[] }
    try {
      const r = parseArgs({
        args: rest,
        options: { db: { type: 'string' }, group: { type: 'string' }, format: { type: 'string' }, out: { type: 'string' }, images: { type: 'string' }, 'with-images': { type: 'string' } },
        strict: true,
        allowPositionals: true,
      })
      parsed = { values: r.values as Record<string, string | undefined>, positionals: r.positionals }
    } catch (err) {
      throw usage((err as Error).message, LABELS_USAGE)
    }
    const { values, positionals } = parsed
    const db = values['db'] ?? cliConfig(io).LABELS_DB
    if (!db) throw usage('--db is required (or set LABELS_DB)', LABELS_USAGE)
    const store = await LabelStore.open(db, { readOnly: command === 'export' || command === 'summary' })
    let admission: ImageAdmission | undefined
    try {
      if (command === 'add-images' || command === 'import') admission = imageAdmission(io)
      switch (command) {
        case 'add-images': {
          const group = values['group'] ?? 'dir'
          if (!['dir', 'file', 'none'].includes(group)) throw usage(`--group: expected dir, file or none, got ${JSON.stringify(group)}`, LABELS_USAGE)
          if (positionals.length === 0) throw usage('add-images: name at least one file or folder', LABELS_USAGE)
          return await addImages(store, positionals, group, admission!, io)
        }
        case 'export': {
          const format = (values['format'] ?? 'jsonl') as ExportFormat
          if (!EXPORT_FORMATS.includes(format)) throw usage(`--format: expected jsonl or csv, got ${JSON.stringify(format)}`, LABELS_USAGE)
          return await exportLabels(store, format, values['out'], values['with-images'], io)
        }
        case 'import': {
          if (positionals.length !== 1) throw usage('import: name exactly one export file', LABELS_USAGE)
          return await importLabels(store, positionals[0]!, values['images'], admission!, io)
        }
        default: {
          io.out(JSON.stringify(store.summary(), null, 2))
          return 0
        }
      }
    } finally {
      store.close()
      await admission?.close()
    }
  })
}

