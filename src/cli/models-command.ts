import { parseArgs } from 'node:util'
import type { DownloadOptions } from '../model-tools/download.js'
import { ModelError } from '../models/model-error.js'
import { TASKS, type KerasSource, type Task } from '../model-tools/sources.js'
import { cliConfig, type CliIo } from './io.js'
import { groupUsage, MODELS_COMMANDS, MODELS_FOOTER, subcommandUsage, wantsHelp } from './help.js'
import { imageAdmission } from './image-admission.js'
import { createProgress } from './progress.js'

/** Test seams for pull: the source table and download tuning. */
export interface ModelsCommandDeps {
  sources?: readonly KerasSource[]
  download?: DownloadOptions
}

export const MODELS_USAGE = groupUsage('models', MODELS_COMMANDS, MODELS_FOOTER)

const SYNTHETIC_HINT = 'SYNTHETIC models are seeded random weights: their scores carry no meaning. Run `npx nima-serve models pull` for the real idealo models.'

function usage(message: string): ModelError {
  return new ModelError('MODEL_USAGE', `${message}\n${MODELS_USAGE}`)
}

function parse(args: string[], options: Record<string, { type: 'string' }>): Record<string, string | undefined> {
  try {
    return parseArgs({ args, options: { dir: { type: 'string' }, ...options }, strict: true, allowPositionals: false }).values as Record<string, string | undefined>
  } catch (err) {
    throw usage(err instanceof Error ? err.message : String(err))
  }
}

/** `models import`'s arguments: one FILE, string options and the --force flag. */
function parseImport(args: string[]): { file: string; values: Record<string, string | undefined>; force: boolean } {
  let parsed
  try {
    parsed = parseArgs({
      args,
      options: {
        dir: { type: 'string' },
        task: { type: 'string' },
        id: { type: 'string' },
        version: { type: 'string' },
        check: { type: 'string' },
        force: { type: 'boolean' },
      },
      strict: true,
      allowPositionals: true,
    })
  } catch (err) {
    throw usage(err instanceof Error ? err.message : String(err))
  }
  const { positionals, values } = parsed
  if (positionals.length !== 1) throw usage(`import: expected one weights FILE, got ${positionals.length}${positionals.length > 0 ? ` (${positionals.join(' ')})` : ''}`)
  for (const option of ['task', 'id', 'version'] as const) if (values[option] === undefined) throw usage(`import: --${option} is required`)
  const { force, ...strings } = values
  return { file: positionals[0]!, values: strings, force: force === true }
}

function parseSeed(text: string | undefined): number | undefined {
  if (text === undefined) return undefined
  const seed = Number(text)
  if (!/^\d+$/.test(text) || seed > 0xfffffffe) throw usage(`--seed: expected an integer from 0 to 4294967294, got ${JSON.stringify(text)}`)
  return seed
}

function parseTask(text: string | undefined): Task | undefined {
  if (text === undefined) return undefined
  if (!(TASKS as readonly string[]).includes(text)) throw usage(`--task: expected ${TASKS.join(' or ')}, got ${JSON.stringify(text)}`)
  return text as Task
}

async function ensure(dir: string, io: CliIo): Promise<number> {
  const { ensureModels } = await import('../model-tools/ensure.js')
  const outcomes = await ensureModels(dir)
  for (const { task, action, manifest, modelPath } of outcomes) {
    const what = manifest.synthetic ? `SYNTHETIC model ${manifest.version}` : `model ${manifest.version}`
    io.out(
      action === 'created'
        ? `${task}: installed ${what} at ${modelPath}`
        : action === 'regenerated'
          ? `${task}: regenerated ${what} at ${modelPath} (it predated the feature-map output /explain needs; same seed, same scores)`
          : `${task}: ${what} already installed`,
    )
  }
  if (outcomes.some((o) => o.manifest.synthetic)) io.out(SYNTHETIC_HINT)
  return 0
}

async function synth(dir: string, seed: number | undefined, only: Task | undefined, io: CliIo): Promise<number> {
  const { installSynthetic } = await import('../model-tools/synthesize.js')
  const { DEFAULT_SYNTHETIC_SEEDS } = await import('../model-tools/synthetic-seeds.js')
  for (const [index, task] of TASKS.entries()) {
    if (only !== undefined && task !== only) continue
    const model = await installSynthetic(dir, task, seed === undefined ? DEFAULT_SYNTHETIC_SEEDS[task] : seed + index)
    io.out(`${task}: installed SYNTHETIC model ${model.manifest.version} at ${model.modelPath}`)
  }
  io.out(SYNTHETIC_HINT)
  return 0
}

/**
 * The Keras readers behind `pull` and `import` need h5wasm, which the container images
 * leave out (the server never reads Keras files): there these commands say where to run
 * them instead of failing with a module-resolution stack.
 */
async function loadConverter<T>(command: string, load: () => Promise<T>): Promise<T> {
  try {
    return await load()
  } catch (err) {
    const e = err as { code?: unknown; message?: unknown }
    if (e.code !== 'ERR_MODULE_NOT_FOUND' || !/'h5wasm[/']/.test(String(e.message))) throw err
    throw new ModelError(
      'MODEL_CONVERTER_UNAVAILABLE',
      `models ${command}: this installation has no h5wasm, which reads Keras weights (the container images leave it out). ` +
        `Run \`npx nima-serve models ${command} --dir DIR\` from a full install (npm ci) and mount DIR as MODELS_DIR.`,
      { cause: err },
    )
  }
}

async function pull(dir: string, values: Record<string, string | undefined>, io: CliIo, deps: ModelsCommandDeps): Promise<number> {
  if (values['from'] !== undefined && values['base-url'] !== undefined) throw usage('pull: use --from or --base-url, not both')
  const { pullModels } = await loadConverter('pull', () => import('../model-tools/pull.js'))
  const installed = await pullModels({
    dir,
    sources: deps.sources,
    from: values['from'],
    baseUrl: values['base-url'],
    log: io.out,
    download: { progress: createProgress(io.progressStream, io.out), ...deps.download },
  })
  io.out(`installed ${installed.map((m) => `${m.manifest.id}/${m.manifest.version}`).join(', ')}`)
  return 0
}

function parseTolerance(text: string | undefined): number {
  if (text === undefined) return DEFAULT_FLOAT16_TOLERANCE
  const value = Number(text)
  if (text.trim() === '' || !Number.isFinite(value) || value <= 0) throw usage(`--tolerance: expected a positive number, got ${JSON.stringify(text)}`)
  return value
}

/** The largest |Δmean| a float16 variant may show before `fp16 --check` refuses it. */
export const DEFAULT_FLOAT16_TOLERANCE = 0.02

/** The photos of `--check DIR` (recursively, sorted), or undefined without the option; an unreadable or empty folder is a usage error. */
async function checkPhotos(folder: string | undefined, flag = '--check'): Promise<string[] | undefined> {
  if (folder === undefined) return undefined
  const { imageFiles } = await import('../scoring/precision-check.js')
  let photos: string[]
  try {
    photos = await imageFiles(folder)
  } catch (err) {
    throw usage(`${flag}: cannot read folder ${folder}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`)
  }
  if (photos.length === 0) throw usage(`${flag}: no images in ${folder}`)
  return photos
}

async function fp16(dir: string, values: Record<string, string | undefined>, io: CliIo): Promise<number> {
  const { scanModels, selectModel, modelRef, readVerifiedModel } = await import('../models/catalog.js')
  const { float16Model, installFloat16Variant } = await import('../model-tools/float16-variant.js')
  const { comparePrecision } = await import('../scoring/precision-check.js')
  const tolerance = parseTolerance(values['tolerance'])
  const photos = await checkPhotos(values['check'])
  const { entries, problems } = await scanModels(dir)
  for (const p of problems) io.err(`unreadable manifest ${p.path}: ${p.error}`)
  const ids = values['id'] !== undefined ? [values['id']] : [...new Set(entries.map((e) => e.manifest.id))]
  const bases = ids.map((id) => selectModel(entries, id) ?? id)
  const missing = bases.filter((b) => typeof b === 'string')
  if (ids.length === 0 || missing.length > 0) throw usage(`fp16: no float32 model ${missing.length > 0 ? `for ${missing.join(', ')} ` : ''}in ${dir}; run \`nima-serve models ensure\` or \`pull\` first`)
  // The photos decode through the service's admission, with this environment's settings.
  const admission = photos ? imageAdmission(io) : undefined
  try {
    for (const base of bases) {
      if (typeof base === 'string') continue
      const ref = modelRef(base.manifest)
      const converted = float16Model(await readVerifiedModel(base), ref)
      let check: Awaited<ReturnType<typeof comparePrecision>> | undefined
      if (photos) {
        check = await comparePrecision(base.manifest, base.modelPath, converted.onnx, photos, admission!)
        const figures = `${check.images} photos, |Δmean| max ${check.maxAbsDeltaMean.toExponential(2)} mean ${check.meanAbsDeltaMean.toExponential(2)}, |Δp| max ${check.maxAbsDeltaP.toExponential(2)} (${check.provider})`
        if (check.maxAbsDeltaMean > tolerance) {
          throw new ModelError('MODEL_PRECISION_CHECK_FAILED', `${ref}: float16 variant not installed: ${figures}; worst ${check.worst} is above the tolerance ${tolerance}`)
        }
        for (const { photo, reason } of check.skipped) io.err(`${ref}: skipped ${photo}: ${reason}`)
        io.out(`${ref}: float16 check passed: ${figures}, tolerance ${tolerance}`)
      }
      const { installed, stats } = await installFloat16Variant(dir, base, { ...converted, check })
      const kind = base.manifest.synthetic ? 'SYNTHETIC ' : ''
      io.out(
        `${ref}: installed ${kind}float16 variant ${installed.manifest.version} at ${installed.modelPath} ` +
          `(${stats.values} weights, max rounding error ${stats.maxAbsRoundingError.toExponential(2)}, ${stats.flushedToZero} flushed to zero)`,
      )
    }
  } finally {
    await admission?.close()
  }
  io.out('Serve them with MODEL_PRECISION=float16 (meant for EXECUTION_PROVIDERS=cuda or webgpu; on the CPU provider they are slower, not faster).')
  return 0
}

/**
 * `models check-preprocess --photos DIR`: what PREPROCESS=fast would change, per installed
 * model (src/scoring/preprocess-check.ts). Reports; never fails on the figures, which only
 * the operator can judge against the decisions the scores feed.
 */
async function checkPreprocess(dir: string, values: Record<string, string | undefined>, io: CliIo): Promise<number> {
  if (values['photos'] === undefined) throw usage('check-preprocess: --photos DIR is required')
  const photos = (await checkPhotos(values['photos'], '--photos'))!
  const { scanModels, selectModel } = await import('../models/catalog.js')
  const { comparePreprocessing } = await import('../scoring/preprocess-check.js')
  const { entries, problems } = await scanModels(dir)
  for (const p of problems) io.err(`unreadable manifest ${p.path}: ${p.error}`)
  const ids = values['id'] !== undefined ? [values['id']] : [...new Set(entries.map((e) => e.manifest.id))]
  const models = ids.map((id) => selectModel(entries, id) ?? id)
  const missing = models.filter((m) => typeof m === 'string')
  if (ids.length === 0 || missing.length > 0) throw usage(`check-preprocess: no model ${missing.length > 0 ? `${missing.join(', ')} ` : ''}in ${dir}; run \`nima-serve models ensure\` or \`pull\` first`)
  const admission = imageAdmission(io)
  let check
  try {
    check = await comparePreprocessing(models.filter((m) => typeof m !== 'string'), photos, admission)
  } finally {
    await admission.close()
  }
  for (const { photo, reason } of check.skipped) io.err(`skipped ${photo}: ${reason}`)
  const f = (x: number) => x.toFixed(4)
  io.out(['model', 'photos', 'max |Δmean|', 'mean |Δmean|', 'spearman', 'largest rank change', 'worst |Δmean| photo'].join('\t'))
  for (const m of check.models) {
    const moved = m.largestRankChange
    const change = `${Math.abs(moved.exact - moved.fast)} (${moved.photo}: ${moved.exact} → ${moved.fast})`
    io.out([`${m.id}/${m.version}${m.synthetic ? ' SYNTHETIC' : ''}`, m.images, f(m.maxAbsDeltaMean), f(m.meanAbsDeltaMean), f(m.spearman), change, m.worst].join('\t'))
  }
  if (check.models.some((m) => m.synthetic)) {
    io.out('SYNTHETIC models (seeded random weights): these figures say how random weights react to the pixels, nothing about real scores. Run it again after `npx nima-serve models pull`.')
  }
  io.out('How to read them: docs/models.md, "Fast preprocessing": |Δmean| against the score gaps your decisions depend on, the rank correlation and rank change against how you use the order.')
  return 0
}

async function importWeights(args: string[], dirOf: (values: Record<string, string | undefined>) => string, io: CliIo): Promise<number> {
  const { file, values, force } = parseImport(args)
  const task = parseTask(values['task'])!
  const { importKerasModel } = await loadConverter('import', () => import('../model-tools/import.js'))
  const photos = await checkPhotos(values['check'])
  const dir = dirOf(values)
  // The proof's photos decode through the service's admission, with this environment's settings.
  const admission = photos ? imageAdmission(io) : undefined
  let installed
  try {
    ;({ installed } = await importKerasModel({
      dir,
      file,
      task,
      id: values['id']!,
      version: values['version']!,
      photos,
      maxInputPixels: cliConfig(io).MAX_INPUT_PIXELS,
      ...(admission ? { admission } : {}),
      force,
      log: io.out,
    }))
  } finally {
    await admission?.close()
  }
  const m = installed.manifest
  const models = m.task === 'aesthetic' ? `${m.id},technical` : `aesthetic,${m.id}`
  io.out(`${m.id}/${m.version}: installed ${installed.modelPath} (task ${m.task}); serve it with e.g. MODELS=${models}`)
  return 0
}

async function list(dir: string, io: CliIo): Promise<number> {
  const { scanModels } = await import('../models/catalog.js')
  const { entries, problems } = await scanModels(dir)
  for (const p of problems) io.err(`unreadable manifest ${p.path}: ${p.error}`)
  if (entries.length === 0) {
    io.out(`no models installed in ${dir}; run: nima-serve models ensure`)
    return problems.length === 0 ? 0 : 1
  }
  const { manifestPrecision } = await import('../models/manifest.js')
  io.out(['id', 'version', 'synthetic', 'precision', 'sha256'].join('\t'))
  for (const { manifest: m } of entries) io.out([m.id, m.version, m.synthetic ? 'SYNTHETIC' : 'no', manifestPrecision(m), m.sha256].join('\t'))
  return problems.length === 0 ? 0 : 1
}

/** `nima-serve models <command>`; returns the exit code. Expected failures throw ModelError. */
export async function runModelsCommand(args: readonly string[], io: CliIo, deps: ModelsCommandDeps = {}): Promise<number> {
  const [command, ...rest] = args
  const help = command !== undefined && wantsHelp(rest) ? subcommandUsage('models', MODELS_COMMANDS, command, MODELS_FOOTER) : undefined
  if (help !== undefined) {
    io.out(help)
    return 0
  }
  // --dir, else MODELS_DIR as the service reads it; read only when --dir is absent.
  const dir = (values: Record<string, string | undefined>) => values['dir'] ?? cliConfig(io).MODELS_DIR
  switch (command) {
    case 'ensure':
      return ensure(dir(parse(rest, {})), io)
    case 'synth': {
      const values = parse(rest, { seed: { type: 'string' }, task: { type: 'string' } })
      return synth(dir(values), parseSeed(values['seed']), parseTask(values['task']), io)
    }
    case 'pull': {
      const values = parse(rest, { from: { type: 'string' }, 'base-url': { type: 'string' } })
      return pull(dir(values), values, io, deps)
    }
    case 'fp16': {
      const values = parse(rest, { id: { type: 'string' }, check: { type: 'string' }, tolerance: { type: 'string' } })
      return fp16(dir(values), values, io)
    }
    case 'check-preprocess': {
      const values = parse(rest, { photos: { type: 'string' }, id: { type: 'string' } })
      return checkPreprocess(dir(values), values, io)
    }
    case 'import':
      return importWeights(rest, dir, io)
    case 'list':
      return list(dir(parse(rest, {})), io)
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      io.out(MODELS_USAGE)
      return command === undefined ? 2 : 0
    default:
      throw usage(`unknown models command ${JSON.stringify(command)}`)
  }
}
