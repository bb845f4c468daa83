import { stat } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { parseArgs } from 'node:util'
import type { FastifyBaseLogger } from 'fastify'
import { pino } from 'pino'
import { INPUT_FORMATS, InputError, formatFromPath, readInput, type InputFormat } from '../batch/input.js'
import { runBatch, type BatchSummary } from '../batch/pipeline.js'
import { createBatchProgress, formatDuration } from '../batch/progress.js'
import { rankHotels, type RankHotelsSummary } from '../batch/rank-hotels.js'
import { DEFAULT_DIVERSITY } from '../scoring/diversity.js'
import { DEFAULT_MAX_DISTANCE } from '../scoring/near-duplicates.js'
import type { RequestedRankOptions } from '../scoring/ranking.js'
import { checkOutputAvailable, type OutputMode } from '../batch/result-log.js'
import { ScoreCache } from '../batch/score-cache.js'
import { parseShard, type Shard } from '../batch/shard.js'
import { envValue, loadConfig, type Config } from '../config/load.js'
import type { RawConfig } from '../config/schema.js'
import { kFailureKind } from '../errors.js'
import { createAddressPolicy } from '../fetching/address-policy.js'
import { createImageSource } from '../fetching/image-source.js'
import { applyGcSettings } from '../gc-settings.js'
import { loadScorer } from '../scoring/load-scorer.js'
import { intOption, reportFailure, UsageError, type CliIo } from './io.js'
import { tracingSettings } from '../tracing/settings.js'
import type { StopTracing } from '../tracing/sdk.js'

/** Test seams. Without `signal`, SIGINT and SIGTERM stop the run gracefully (in-flight items finish and are written). */
export interface BatchCommandDeps {
  signal?: AbortSignal
}

export const BATCH_USAGE = `usage: nima-serve batch --input FILE --output RESULTS.jsonl [options]

Scores every image listed in FILE and appends one JSON line per image to RESULTS.jsonl.

input:
  --input FILE            .txt (one path or URL a line; # comments), .csv (header with url or path,
                          optional hotel_id, image_id) or .jsonl (objects with the same fields); - for stdin
  --format txt|csv|jsonl  override the format the extension implies
  --allow LIST            hosts (exact or *.suffix) or CIDRs that URL inputs may reach despite the
                          private-address deny list (default: $URL_ALLOWLIST)
scoring:
  --models a,b            model ids (default: $MODELS, aesthetic,technical)
  --models-dir DIR        where the models are (default: $MODELS_DIR or ./models)
  --batch-size B          images per inference run (default: $BATCH_MAX_SIZE if set, else 16)
  --in-flight M           images being scored at once: decoding, waiting for a batch, inferring (default: 4B+2);
                          decodes are bounded by the service's admission ($DECODE_MEMORY_BUDGET_BYTES, ...)
  --concurrency N         images read or fetched at once, read-ahead included (default: 2M+16)
  --per-host N            URL fetches at once to one host (default: $RANK_PER_HOST_CONCURRENCY or 4)
  --cache DIR             content-hash score cache (default: .nima-cache beside the output)
  --no-cache              no cache: every image is decoded and scored
work splitting and restarts:
  --shard i/n             process only keys with hash(key) mod n = i (0-based, like JOB_COMPLETION_INDEX)
  --resume                continue RESULTS.jsonl: skip every key already in it (failed ones too)
  --retry-failed          like --resume, but first drop the failed lines so those keys run again
output durability and progress:
  --flush-lines K         write+fsync after K lines (default 64)
  --flush-ms T            ... or T ms after a line was produced (default 1000)
  --progress-interval S   seconds between progress lines when stderr is not a terminal (default 10)

Exit status: 0 when the run finished (per-image failures are in the output), 1 on a fatal
error, 2 on bad usage, 130/143 when stopped by SIGINT/SIGTERM (after flushing; rerun with --resume).`

export const RANK_HOTELS_USAGE = `usage: nima-serve rank-hotels --input RESULTS.jsonl [--input MORE.jsonl ...] --output BEST.jsonl [options]

Groups batch results by hotel_id and writes one line per hotel: its images best first
(combined score, ties on the aesthetic mean, then input order), identical images once with
their duplicates, near-duplicates (perceptual hash within --max-distance bits) folded into
the best of them as near_duplicates, failed images apart. The same rule as POST /rank.

  --partitions P         spread hotels over P temporary files to bound memory (default: one per 256 MiB of input)
  --tmp-dir DIR          where the partition files go (default: the OS temp folder)
  --max-distance N       near-duplicate threshold, Hamming distance of 64 bits (default ${DEFAULT_MAX_DISTANCE})
  --no-near-duplicates   fold byte-identical images only
  --select K             put the first K of each hotel by maximal marginal relevance (diverse picks)
  --diversity D          MMR trade-off 0..1 for --select (default ${DEFAULT_DIVERSITY})`

export const DEFAULT_BATCH_SIZE = 16

/**
 * Images decoded or in inference at once. Each image waits for every model, so a full
 * batch can queue at each model only with about twice the batch size per model in
 * flight; measured on 2 cores at B=16, 2B+2 left batches ~30 % short (11 of 16), 4B+2 nearly
 * fills them (15 of 16).
 */
export function defaultInFlight(batchSize: number): number {
  return 4 * batchSize + 2
}

/**
 * Items read or fetched at once: the in-flight images plus as many read ahead. File
 * reads share libuv's thread pool with decoding and queue behind it, so a shallow
 * read-ahead leaves scoring slots idle (measured: batches 10 % smaller).
 */
export function defaultConcurrency(inFlight: number): number {
  return 2 * inFlight + 16
}

/** Expected fatal failures (models missing, …): one message, no stack. */
class FatalError extends Error {
  override name = 'FatalError'
  readonly [kFailureKind] = 'failed' as const
}

type OptionSpecs = Record<string, { type: 'string' | 'boolean'; multiple?: boolean; short?: string }>

function parse(args: readonly string[], usage: string, options: OptionSpecs): Record<string, string | boolean | string[] | undefined> {
  try {
    return parseArgs({ args: [...args], options, strict: true, allowPositionals: false }).values as Record<string, string | boolean | string[] | undefined>
  } catch (err) {
    throw new UsageError(`${err instanceof Error ? err.message : String(err)}\n${usage}`)
  }
}

function stringOption(values: Record<string, unknown>, name: string): string | undefined {
  const v = values[name]
  return typeof v === 'string' ? v : undefined
}

/** A pino logger whose lines go to `io.err` as plain text, for loadScorer's messages. */
function cliLogger(io: CliIo, level: string): FastifyBaseLogger {
  return pino(
    { level },
    {
      write(line: string) {
        try {
          const o = JSON.parse(line) as { msg?: string; level?: number }
          io.err(`nima-serve: ${(o.level ?? 30) >= 40 ? 'warning: ' : ''}${o.msg ?? line.trim()}`)
        } catch {
          io.err(line.trimEnd())
        }
      },
    },
  ) as unknown as FastifyBaseLogger
}

/** The admission settings in force, for the start line: what a refused image was held to, and how pixels were made. */
function describeAdmission(c: Config): string {
  const MiB = 1024 * 1024
  return (
    `MAX_INPUT_PIXELS ${c.MAX_INPUT_PIXELS}, JPEG_MAX_SCANS ${c.JPEG_MAX_SCANS}, DECODE_MEMORY_BUDGET_BYTES ${Math.round(c.DECODE_MEMORY_BUDGET_BYTES / MiB)} MiB, ` +
    `DECODE_ISOLATION ${c.DECODE_ISOLATION}${c.DECODE_ISOLATION === 'process' ? ` (DECODE_TIMEOUT_MS ${c.DECODE_TIMEOUT_MS}, DECODE_INLINE_MAX_PIXELS ${c.DECODE_INLINE_MAX_PIXELS})` : ''}, PREPROCESS ${c.PREPROCESS}`
  )
}

function describeSummary(s: BatchSummary): string[] {
  const lines = [
    `batch: ${s.interrupted ? 'STOPPED' : 'done'} in ${formatDuration(s.wallSeconds)}: ${s.written} lines written (${s.scored} scored, ${s.cached} cached, ${s.failed} failed), ` +
      `${s.imagesPerSecond} img/s; read ${s.total} input records, ${s.skippedResume} skipped as already done, ${s.notInShard} not in shard${s.shard ? ` ${s.shard}` : ''}`,
  ]
  const codes = Object.entries(s.failuresByCode)
  if (codes.length > 0) lines.push(`batch: failures by code: ${codes.map(([c, n]) => `${c}=${n}`).join(', ')}`)
  if (s.interrupted) lines.push(`batch: rerun with --resume to continue ${s.output}`)
  return lines
}

interface BatchArgs {
  input: string
  format: InputFormat
  output: string
  mode: OutputMode
  shard?: Shard
  batchSize?: number
  inFlight?: number
  concurrency?: number
  perHost?: number
  cacheDir?: string
  flushLines: number
  flushMs: number
  progressIntervalMs: number
  overrides: Partial<RawConfig>
}

function parseBatchArgs(args: readonly string[], env: NodeJS.ProcessEnv): BatchArgs | 'help' {
  const v = parse(args, BATCH_USAGE, {
    input: { type: 'string' },
    output: { type: 'string' },
    format: { type: 'string' },
    concurrency: { type: 'string' },
    'batch-size': { type: 'string' },
    'in-flight': { type: 'string' },
    'per-host': { type: 'string' },
    shard: { type: 'string' },
    resume: { type: 'boolean' },
    'retry-failed': { type: 'boolean' },
    models: { type: 'string' },
    'models-dir': { type: 'string' },
    cache: { type: 'string' },
    'no-cache': { type: 'boolean' },
    allow: { type: 'string' },
    'flush-lines': { type: 'string' },
    'flush-ms': { type: 'string' },
    'progress-interval': { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  })
  if (v['help'] === true) return 'help'
  const input = stringOption(v, 'input')
  const output = stringOption(v, 'output')
  if (input === undefined) throw new UsageError(`--input is required\n${BATCH_USAGE}`)
  if (output === undefined) throw new UsageError(`--output is required\n${BATCH_USAGE}`)
  const formatText = stringOption(v, 'format')
  if (formatText !== undefined && !(INPUT_FORMATS as readonly string[]).includes(formatText)) {
    throw new UsageError(`--format: expected ${INPUT_FORMATS.join(', ')}, got ${JSON.stringify(formatText)}`)
  }
  const format = (formatText as InputFormat | undefined) ?? (input === '-' ? undefined : formatFromPath(input))
  if (format === undefined) throw new UsageError(`--format is needed: cannot tell the format of ${JSON.stringify(input)} from its extension (.txt, .csv, .jsonl)`)
  if (v['cache'] !== undefined && v['no-cache'] === true) throw new UsageError('--cache and --no-cache exclude each other')
  let shard: Shard | undefined
  const shardText = stringOption(v, 'shard')
  if (shardText !== undefined) {
    try {
      shard = parseShard(shardText)
    } catch (err) {
      throw new UsageError((err as Error).message)
    }
  }
  const overrides: Partial<RawConfig> = {}
  const modelsDir = stringOption(v, 'models-dir')
  if (modelsDir !== undefined) overrides.MODELS_DIR = modelsDir
  const models = stringOption(v, 'models')
  if (models !== undefined) overrides.MODELS = models
  const allow = stringOption(v, 'allow')
  if (allow !== undefined) overrides.URL_ALLOWLIST = allow
  if (envValue(env, 'LOG_LEVEL') === undefined) overrides.LOG_LEVEL = 'warn'
  // Batch runs favour throughput: bigger batches than the service's latency-minded default.
  const batchSize = intOption(v, 'batch-size', 1, 256) ?? (envValue(env, 'BATCH_MAX_SIZE') === undefined ? DEFAULT_BATCH_SIZE : undefined)
  if (batchSize !== undefined) overrides.BATCH_MAX_SIZE = batchSize
  const noCache = v['no-cache'] === true
  return {
    input,
    format,
    output,
    mode: v['retry-failed'] === true ? 'retry-failed' : v['resume'] === true ? 'resume' : 'new',
    ...(shard ? { shard } : {}),
    ...(batchSize !== undefined ? { batchSize } : {}),
    ...(v['in-flight'] !== undefined ? { inFlight: intOption(v, 'in-flight', 1, 4096)! } : {}),
    ...(v['concurrency'] !== undefined ? { concurrency: intOption(v, 'concurrency', 1, 4096)! } : {}),
    ...(v['per-host'] !== undefined ? { perHost: intOption(v, 'per-host', 1, 1024)! } : {}),
    ...(noCache ? {} : { cacheDir: stringOption(v, 'cache') ?? join(dirname(output), '.nima-cache') }),
    flushLines: intOption(v, 'flush-lines', 1, 1_000_000) ?? 64,
    flushMs: intOption(v, 'flush-ms', 1, 3_600_000) ?? 1000,
    progressIntervalMs: (intOption(v, 'progress-interval', 1, 86_400) ?? 10) * 1000,
    overrides,
  }
}

/** Stops on SIGINT/SIGTERM (once; a second signal gets Node's default: exit at once). */
function signalsController(io: CliIo): { signal: AbortSignal; exitCode: () => number | undefined; dispose: () => void } {
  const controller = new AbortController()
  let received: NodeJS.Signals | undefined
  const handler = (sig: NodeJS.Signals): void => {
    received = sig
    io.err(`batch: ${sig} received: finishing the images in flight and flushing the output (send it again to stop at once)`)
    dispose()
    controller.abort(new Error(sig))
  }
  const dispose = (): void => {
    process.off('SIGINT', handler)
    process.off('SIGTERM', handler)
  }
  process.on('SIGINT', handler)
  process.on('SIGTERM', handler)
  return { signal: controller.signal, exitCode: () => (received === 'SIGINT' ? 130 : received === 'SIGTERM' ? 143 : undefined), dispose }
}

async function batch(a: BatchArgs, io: CliIo, deps: BatchCommandDeps): Promise<number> {
  let inputBytes: number | undefined
  if (a.input !== '-') {
    try {
      const st = await stat(a.input)
      if (!st.isFile()) throw new InputError(`--input ${a.input} is not a file`)
      inputBytes = st.size
    } catch (err) {
      if (err instanceof InputError) throw err
      throw new InputError(`cannot read --input ${a.input} (${(err as NodeJS.ErrnoException).code ?? 'error'})`)
    }
  }
  await checkOutputAvailable(a.output, a.mode)
  // Images decode through the service's admission with the environment's settings
  // (MAX_INPUT_PIXELS, JPEG_MAX_SCANS, DECODE_MEMORY_BUDGET_BYTES, DECODE_ISOLATION,
  // DECODE_TIMEOUT_MS, ...): a machine of its own may raise them, never skip them. A bad
  // value is a ConfigError: a usage error (exit 2) through reportFailure.
  const read: Config = loadConfig(io.env ?? {}, a.overrides)
  const batchSize = read.BATCH_MAX_SIZE
  const scoreSlots = a.inFlight ?? defaultInFlight(batchSize)
  const concurrency = a.concurrency ?? defaultConcurrency(scoreSlots)
  // The pipeline's own gate (scoreSlots) paces scoring: the scorer's admission of ordinary
  // photos must neither hold back fewer nor refuse the ones waiting (QUEUE_MAX). Both are
  // plain counts that nothing else in the configuration derives from.
  const config: Config = { ...read, QUEUE_MAX: Math.max(read.QUEUE_MAX, scoreSlots), PIPELINE_MAX_IMAGES: scoreSlots }
  applyGcSettings(config)
  let policy
  try {
    policy = createAddressPolicy({ allow: [...config.urlAllowlist] })
  } catch (err) {
    throw new UsageError(`--allow: ${(err as Error).message}`)
  }
  // Traces, as the service exports them (src/tracing/): one per chunk of input items
  // (src/batch/trace-chunks.ts). The SDK reads the rest of OTEL_* from process.env.
  // A bad OTEL_* value is a ConfigError: a usage error (exit 2) through reportFailure.
  const tracing = tracingSettings(io.env ?? {})
  const stopTracing: StopTracing | undefined = tracing ? (await import('../tracing/sdk.js')).startTracing(tracing) : undefined

  let scorer
  try {
    scorer = await loadScorer(config, cliLogger(io, config.LOG_LEVEL))
  } catch (err) {
    throw new FatalError(`cannot load the models: ${(err as Error).message}`, { cause: err })
  }
  const images = createImageSource(config, { policy, ...(a.perHost !== undefined ? { perHost: a.perHost } : {}) })
  let cache: ScoreCache | undefined
  const signals = deps.signal ? undefined : signalsController(io)
  try {
    const models = scorer.resolveModels(config.models)
    if (a.cacheDir !== undefined) {
      let warned = false
      cache = await ScoreCache.open(a.cacheDir, (err) => {
        if (!warned) io.err(`batch: warning: cache write failed (${(err as Error).message}); scores are still written, the cache may miss them`)
        warned = true
      })
    }
    io.err(
      `batch: models ${models.map((m) => `${m.info.id}@${m.info.version}${m.info.synthetic ? ' (SYNTHETIC weights: scores are meaningless)' : ''}`).join(', ')}; ` +
        `batch size ${batchSize}, in flight ${scoreSlots}, concurrency ${concurrency}, ${cache ? `cache ${cache.path}` : 'no cache'}${a.shard ? `, shard ${a.shard.index}/${a.shard.count}` : ''}; ` +
        `admission: ${describeAdmission(config)}`,
    )
    const summary = await runBatch(
      {
        output: a.output,
        mode: a.mode,
        concurrency,
        scoreSlots,
        ...(a.shard ? { shard: a.shard } : {}),
        maxFileBytes: config.BODY_LIMIT_BYTES,
        flushLines: a.flushLines,
        flushMs: a.flushMs,
      },
      {
        items: readInput(a.input, { format: a.format }),
        scorer,
        models,
        weights: config.combinedWeights,
        images,
        ...(cache ? { cache } : {}),
        progress: createBatchProgress({ ...(io.progressStream ? { stream: io.progressStream } : {}), log: io.err, ...(inputBytes !== undefined ? { totalBytes: inputBytes } : {}), intervalMs: a.progressIntervalMs }),
        ...(deps.signal ?? signals?.signal ? { signal: (deps.signal ?? signals?.signal)! } : {}),
        log: io.err,
      },
    )
    for (const line of describeSummary(summary)) io.err(line)
    io.out(JSON.stringify(summary))
    return summary.interrupted ? (signals?.exitCode() ?? 130) : 0
  } finally {
    signals?.dispose()
    await Promise.allSettled([scorer.dispose(), images.close(), cache?.close(), stopTracing?.()])
  }
}

/** `nima-serve batch …`; returns the exit code. */
export async function runBatchCommand(argv: readonly string[], io: CliIo, deps: BatchCommandDeps = {}): Promise<number> {
  try {
    const a = parseBatchArgs(argv, io.env ?? {})
    if (a === 'help') {
      io.out(BATCH_USAGE)
      return 0
    }
    return await batch(a, io, deps)
  } catch (err) {
    return reportFailure(io, 'batch', err, BATCH_USAGE)
  }
}

function describeRank(s: RankHotelsSummary): string {
  return (
    `rank-hotels: ${s.hotels} hotels, ${s.ranked} images ranked (${s.duplicates} duplicates and ${s.nearDuplicates} near-duplicates folded), ${s.failed} failed; ` +
    `${s.withoutHotel} lines without hotel_id, ${s.unparsable} unparsable, ${s.superseded} superseded; ${s.partitions} partition(s), ${s.wallSeconds} s`
  )
}

/** `nima-serve rank-hotels …`; returns the exit code. */
export async function runRankHotelsCommand(argv: readonly string[], io: CliIo): Promise<number> {
  try {
    const v = parse(argv, RANK_HOTELS_USAGE, {
      input: { type: 'string', multiple: true },
      output: { type: 'string' },
      partitions: { type: 'string' },
      'tmp-dir': { type: 'string' },
      'max-distance': { type: 'string' },
      'no-near-duplicates': { type: 'boolean' },
      select: { type: 'string' },
      diversity: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    })
    if (v['help'] === true) {
      io.out(RANK_HOTELS_USAGE)
      return 0
    }
    const inputs = (v['input'] as string[] | undefined) ?? []
    const output = stringOption(v, 'output')
    if (inputs.length === 0) throw new UsageError(`--input is required\n${RANK_HOTELS_USAGE}`)
    if (output === undefined) throw new UsageError(`--output is required\n${RANK_HOTELS_USAGE}`)
    for (const input of inputs) {
      try {
        await stat(input)
      } catch (err) {
        throw new InputError(`cannot read --input ${input} (${(err as NodeJS.ErrnoException).code ?? 'error'})`)
      }
    }
    const partitions = intOption(v, 'partitions', 1, 65_536)
    const tmpDir = stringOption(v, 'tmp-dir')
    const maxDistance = intOption(v, 'max-distance', 0, 64)
    const k = intOption(v, 'select', 1, 10_000)
    const diversityText = stringOption(v, 'diversity')
    const diversity = diversityText === undefined ? undefined : Number(diversityText)
    if (diversity !== undefined && !(/^\d*\.?\d+$/.test(diversityText!) && diversity <= 1)) {
      throw new UsageError(`--diversity: expected a number from 0 to 1, got ${JSON.stringify(diversityText)}`)
    }
    if (diversity !== undefined && k === undefined) throw new UsageError('--diversity needs --select K')
    const rank: RequestedRankOptions = {
      nearDuplicates: { enabled: v['no-near-duplicates'] !== true, ...(maxDistance !== undefined ? { maxDistance } : {}) },
      ...(k !== undefined ? { select: { k, ...(diversity !== undefined ? { diversity } : {}) } } : {}),
    }
    const summary = await rankHotels({ inputs, output, rank, ...(partitions !== undefined ? { partitions } : {}), ...(tmpDir !== undefined ? { tmpDir } : {}) })
    io.err(describeRank(summary))
    io.out(JSON.stringify(summary))
    return 0
  } catch (err) {
    return reportFailure(io, 'rank-hotels', err, RANK_HOTELS_USAGE)
  }
}
