import { readFile, rename, rm, stat, writeFile } from 'node:fs/promises'
import { parseArgs } from 'node:util'
import { buildCalibration, raterMeans, type CatalogueImage, type EntryReport, type RaterMean } from '../calibration/build.js'
import { readFileLines } from '../batch/line-reader.js'
import { ExportParseError, parseExport } from '../labels/export.js'
import { kFailureKind } from '../errors.js'
import { combinedScore } from '../scoring/combined.js'
import { parseCombinedWeights } from '../config/load.js'
import { cliConfig, intOption, reportFailure, UsageError, type CliIo } from './io.js'
import { version } from './version.js'

export const CALIBRATE_USAGE = `usage: nima-serve calibrate --input RESULTS.jsonl [--input MORE.jsonl ...] --output CALIBRATION.json [options]

Reads the lines of \`nima-serve batch\` (the catalogue) and writes, per model file (by its
sha256), the distribution of its means; per set of model files, that of the combined score
for the weights below; with --labels, the monotone map from score to the raters' mean
(isotonic regression) and its error on held-out groups. Serve it with SCORE_CALIBRATION.

  --labels FILE          labelling export (.jsonl or .csv, \`nima-serve labels export\`), matched by image sha256
  --weights a=W,b=W      combined-score weights to calibrate, as COMBINED_WEIGHTS (default: $COMBINED_WEIGHTS, aesthetic=0.6,technical=0.4)
  --folds N              cross-validation folds, by label group (default 5, at most the number of groups)
  --seed N               seed of the folds (default 1)
  --max-images N         distinct images kept (default 1000000); beyond, a uniform sample by image hash

Each distinct image (by the sha256 of its bytes) counts once; failed lines are skipped.`

/** Input that cannot be calibrated (unreadable, no scored line, lines without model hashes). */
class CalibrateError extends Error {
  override name = 'CalibrateError'
  readonly [kFailureKind] = 'failed' as const
}

/** What calibrate needs of one batch line (src/batch/pipeline.ts ResultLine). */
interface BatchLine {
  sha256?: unknown
  error?: unknown
  scores?: Record<string, { mean?: unknown }>
  models?: Record<string, { id?: unknown; version?: unknown; task?: unknown; synthetic?: unknown; sha256?: unknown }>
}

interface ReadStats {
  lines: number
  scored: number
  failed: number
  unparsable: number
  withoutModelHash: number
  duplicates: number
}

const SHA = /^[0-9a-f]{64}$/

/** One scored line as a catalogue image, or why not. */
function toImage(line: BatchLine, weights: Readonly<Record<string, number>>): CatalogueImage | 'failed' | 'no-hash' | undefined {
  if (line.error !== undefined && line.error !== null) return 'failed'
  if (typeof line.sha256 !== 'string' || !SHA.test(line.sha256) || typeof line.scores !== 'object' || line.scores === null || typeof line.models !== 'object' || line.models === null) return undefined
  const models: CatalogueImage['models'] = []
  for (const [id, s] of Object.entries(line.scores)) {
    const m = line.models[id]
    if (typeof s?.mean !== 'number' || !Number.isFinite(s.mean) || !m) return undefined
    if (typeof m.sha256 !== 'string' || !SHA.test(m.sha256)) return 'no-hash'
    models.push({ id, version: String(m.version), task: String(m.task), sha256: m.sha256, synthetic: m.synthetic === true, mean: s.mean })
  }
  if (models.length === 0) return undefined
  const combined = combinedScore(models, Object.fromEntries(models.map((m) => [m.id, m.mean])), weights)
  return { sha256: line.sha256, models, combined }
}

/** The first 32 bits of an image's sha256: uniform, so keeping those below a bound is a uniform sample. */
const hash32 = (sha: string): number => Number.parseInt(sha.slice(0, 8), 16)

/**
 * Reads every input into distinct images, at most `maxImages` of them: past that, the
 * bound on hash32 halves and the images above it leave (labelled images always stay).
 */
async function readCatalogue(
  inputs: readonly string[],
  weights: Readonly<Record<string, number>>,
  maxImages: number,
  labelled: ReadonlySet<string>,
): Promise<{ images: Map<string, CatalogueImage>; stats: ReadStats; bound: number }> {
  const images = new Map<string, CatalogueImage>()
  const stats: ReadStats = { lines: 0, scored: 0, failed: 0, unparsable: 0, withoutModelHash: 0, duplicates: 0 }
  let bound = 2 ** 32
  for (const input of inputs) {
    for await (const l of readFileLines(input, { maxLineBytes: 16 * 1024 * 1024 })) {
      if (l.tooLong || l.text.trim() === '') {
        if (l.tooLong) stats.unparsable++
        continue
      }
      stats.lines++
      let parsed: unknown
      try {
        parsed = JSON.parse(l.text)
      } catch {
        stats.unparsable++
        continue
      }
      const image = typeof parsed === 'object' && parsed !== null ? toImage(parsed as BatchLine, weights) : undefined
      if (image === undefined) stats.unparsable++
      else if (image === 'failed') stats.failed++
      else if (image === 'no-hash') stats.withoutModelHash++
      else {
        stats.scored++
        // The same image under the same model files is one catalogue photo; under other files it is another entry.
        const key = `${image.sha256}|${image.models.map((m) => m.sha256).join(',')}`
        if (images.has(key)) {
          stats.duplicates++
          continue
        }
        if (hash32(image.sha256) >= bound && !labelled.has(image.sha256)) continue
        images.set(key, image)
        // bound ≥ 1: labelled images alone may outnumber maxImages; they all stay.
        while (images.size > maxImages && bound >= 1) {
          bound /= 2
          for (const [k, img] of images) if (hash32(img.sha256) >= bound && !labelled.has(img.sha256)) images.delete(k)
        }
      }
    }
  }
  return { images, stats, bound }
}

/** --weights, in COMBINED_WEIGHTS' own grammar. */
function parseWeights(text: string): Record<string, number> {
  try {
    return parseCombinedWeights(text)
  } catch (err) {
    throw new UsageError(`--weights: ${(err as Error).message}`)
  }
}

const f2 = (x: number): string => x.toFixed(2)

function describeEntry(r: EntryReport): string[] {
  const lines = [`${r.entry}${r.synthetic ? ' (SYNTHETIC weights: these percentiles rank meaningless scores)' : ''}: ${r.size} images, means ${f2(r.min)} … ${f2(r.median)} … ${f2(r.max)} (min, median, max)`]
  if (r.size < 100) lines.push(`  warning: ${r.size} images only: a percentile moves in steps of about ${f2(100 / r.size)} points`)
  if (r.rater) {
    const e = r.rater.evaluation
    lines.push(`  rater map: ${r.rater.images} labelled images, ${r.rater.ratings} ratings`)
    if (e) {
      lines.push(
        `  held-out error (${e.folds} folds over ${e.groups} groups, ${e.images} images), MAE / RMSE in points: ` +
          `model score as is ${f2(e.before.mae)} / ${f2(e.before.rmse)}, mean rating ${f2(e.constant.mae)} / ${f2(e.constant.rmse)}, rater map ${f2(e.after.mae)} / ${f2(e.after.rmse)}`,
      )
    } else {
      lines.push('  held-out error: not measured (the labels have fewer than two groups: nothing could be held out)')
    }
  }
  return lines
}

/** `nima-serve calibrate …`; returns the exit code (2 for usage errors, 1 for failures). */
export async function runCalibrateCommand(argv: readonly string[], io: CliIo): Promise<number> {
  try {
    let v: Record<string, string | string[] | boolean | undefined>
    try {
      v = parseArgs({
        args: [...argv],
        options: {
          input: { type: 'string', multiple: true },
          output: { type: 'string' },
          labels: { type: 'string' },
          weights: { type: 'string' },
          folds: { type: 'string' },
          seed: { type: 'string' },
          'max-images': { type: 'string' },
          help: { type: 'boolean', short: 'h' },
        },
        strict: true,
        allowPositionals: false,
      }).values
    } catch (err) {
      throw new UsageError((err as Error).message)
    }
    if (v['help'] === true || argv.length === 0) {
      io.out(CALIBRATE_USAGE)
      return argv.length === 0 ? 2 : 0
    }
    const inputs = (v['input'] as string[] | undefined) ?? []
    const output = v['output'] as string | undefined
    if (inputs.length === 0) throw new UsageError('--input is required')
    if (output === undefined) throw new UsageError('--output is required')
    // A bad COMBINED_WEIGHTS is a ConfigError: a usage error, like --weights.
    const weights: Record<string, number> = v['weights'] !== undefined ? parseWeights(v['weights'] as string) : { ...cliConfig(io).combinedWeights }
    const folds = intOption(v, 'folds', 2, 1000)
    const seed = intOption(v, 'seed', 0, 0xffffffff)
    const maxImages = intOption(v, 'max-images', 10, 100_000_000) ?? 1_000_000
    for (const input of inputs) {
      try {
        if (!(await stat(input)).isFile()) throw new Error('not a file')
      } catch (err) {
        throw new CalibrateError(`cannot read --input ${input} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`)
      }
    }

    let labels: Map<string, RaterMean> | undefined
    const labelsPath = v['labels'] as string | undefined
    if (labelsPath !== undefined) {
      let text: string
      try {
        text = await readFile(labelsPath, 'utf8')
      } catch (err) {
        throw new CalibrateError(`cannot read --labels ${labelsPath} (${(err as NodeJS.ErrnoException).code ?? 'error'})`)
      }
      try {
        labels = raterMeans(parseExport(text))
      } catch (err) {
        if (err instanceof ExportParseError) throw new CalibrateError(`--labels ${labelsPath}: ${err.message}`)
        throw err
      }
      if (labels.size === 0) throw new CalibrateError(`--labels ${labelsPath} holds no rating`)
    }

    const { images, stats, bound } = await readCatalogue(inputs, weights, maxImages, new Set(labels?.keys() ?? []))
    io.err(
      `calibrate: ${stats.lines} lines read: ${stats.scored} scored (${stats.duplicates} repeating an image already read), ${stats.failed} failed, ${stats.unparsable} not batch results` +
        (stats.withoutModelHash > 0 ? `, ${stats.withoutModelHash} without the model file's sha256` : ''),
    )
    if (bound < 2 ** 32) io.err(`calibrate: more than ${maxImages} distinct images: kept a uniform sample of ${images.size} (image sha256 below ${bound.toString(16).padStart(8, '0')}…)`)
    if (images.size === 0) {
      throw new CalibrateError(
        stats.withoutModelHash > 0
          ? `no usable line: ${stats.withoutModelHash} scored lines lack models.<id>.sha256 (written by a batch before calibration existed); run \`nima-serve batch\` again into a new output (its cache makes that quick)`
          : 'no scored line in the input: nothing to calibrate',
      )
    }
    const { file, report } = buildCalibration([...images.values()], {
      createdAt: new Date().toISOString(),
      tool: `nima-serve ${version()} calibrate`,
      ...(labels ? { labels } : {}),
      ...(folds !== undefined ? { folds } : {}),
      ...(seed !== undefined ? { seed } : {}),
    })
    if (labels) {
      const matched = new Set([...images.values()].map((i) => i.sha256).filter((s) => labels!.has(s)))
      io.err(`calibrate: ${labels.size} labelled images in ${labelsPath}, ${matched.size} of them in the catalogue`)
      if (matched.size === 0) io.err('calibrate: warning: no labelled image is in the catalogue (labels are matched by the sha256 of the image bytes): no rater map')
    }
    for (const r of report) for (const line of describeEntry(r)) io.err(line)

    const tmp = `${output}.tmp-${process.pid}`
    try {
      await writeFile(tmp, `${JSON.stringify(file)}\n`)
      await rename(tmp, output)
    } catch (err) {
      await rm(tmp, { force: true })
      throw new CalibrateError(`cannot write --output ${output} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`)
    }
    io.err(`calibrate: wrote ${output}; serve it with SCORE_CALIBRATION=${output}`)
    io.out(JSON.stringify({ output, read: stats, entries: report }))
    return 0
  } catch (err) {
    return reportFailure(io, 'calibrate', err, CALIBRATE_USAGE)
  }
}
