/**
 * The batch pipeline: input items → (shard filter, resume filter) → read or fetch the
 * bytes (at most `concurrency` items in flight) → sha256 → the service's cache rule
 * (src/scoring/cached-scoring.ts scoreThroughStore, over the LMDB store) → the Scorer's
 * admission, decode and inference, exactly as for POST /score (at most `scoreSlots`
 * images in scoring at once, enough to fill the models' micro-batches) → one JSON line
 * per item, appended durably. An image the admission refuses gets an error line with the
 * service's code (NIMA_TOO_MANY_SCANS, NIMA_IMAGE_TOO_LARGE, NIMA_DECODE_TIMEOUT, ...).
 *
 * Memory is bounded: the input is streamed, and what is held is about `concurrency` ×
 * compressed image, the decodes the admission lets run (DECODE_MEMORY_BUDGET_BYTES, the
 * inline lane), plus the set of keys already in the output on resume (~60 bytes a key).
 */
import { open as openFile } from 'node:fs/promises'
import { NimaError, toNimaError, type ErrorCode } from '../errors.js'
import type { ImageSource } from '../fetching/image-source.js'
import { imageId } from '../imaging/decode.js'
import { scoreThroughStore } from '../scoring/cached-scoring.js'
import type { CombinedScore, Weights } from '../scoring/combined.js'
import type { CalibratedFields } from '../calibration/bound-calibration.js'
import type { ScoreSummary } from '../scoring/distribution.js'
import type { NimaModel } from '../scoring/nima-model.js'
import type { ImageScore, Scorer } from '../scoring/scorer.js'
import type { InputItem } from './input.js'
import type { BatchProgress, ProgressSnapshot } from './progress.js'
import { prepareOutput, ResultWriter, type ExistingResults, type OutputMode } from './result-log.js'
import type { ScoreCache } from './score-cache.js'
import { inShard, type Shard } from './shard.js'
import { createLimiter } from '../util/limiter.js'
import { TraceChunks } from './trace-chunks.js'
import type { Preprocess } from '../imaging/preprocess.js'

/** One line of the results file. Exactly one of `scores` (with `combined`, `models`) or `error` is present. */
export interface ResultLine {
  key: string
  line: number
  hotel_id?: string
  image_id?: string
  source?: string
  sha256?: string
  width?: number
  height?: number
  format?: string
  bytes?: number
  /** Which preprocessing produced the scores (PREPROCESS: src/imaging/preprocess.ts). */
  preprocess?: Preprocess
  /** 64-bit perceptual hash (src/imaging/phash.ts), 16 hex digits: rank-hotels groups near-duplicates by it. */
  phash?: string
  /** The four corner-crop hashes (src/imaging/phash.ts cornerHashes): one-sided crops still group. */
  phashCrops?: string[]
  /** With `percentile` (and `calibrated`) where SCORE_CALIBRATION covers the model. */
  scores?: Record<string, ScoreSummary & CalibratedFields>
  combined?: CombinedScore & CalibratedFields
  /** `sha256`: of the model file, which `calibrate` keys its calibration by. */
  models?: Record<string, { id: string; version: string; task: string; synthetic: boolean; sha256: string }>
  /** True when no model ran for this line: scores came from the cache or from an identical image of this run. */
  cached: boolean
  error?: { code: ErrorCode; message: string }
}

export interface BatchRunOptions {
  output: string
  mode: OutputMode
  /** Items read or fetched at once. */
  concurrency: number
  /** Images in scoring (admission, decode, inference) at once (4 × batch size + 2 fills the batches). */
  scoreSlots: number
  shard?: Shard
  /** Largest local file read, in bytes. */
  maxFileBytes: number
  flushLines?: number
  flushMs?: number
}

export interface BatchRunDeps {
  items: AsyncIterable<InputItem>
  /** Its pipeline admission should let `scoreSlots` images in (PIPELINE_MAX_IMAGES, QUEUE_MAX; the command sets both). */
  scorer: Scorer
  models: readonly NimaModel[]
  weights: Weights
  /** Where URL inputs come from (the same image source the service uses). */
  images: Pick<ImageSource, 'fetch'>
  cache?: ScoreCache
  progress?: BatchProgress
  /** Stops reading new items; those in flight finish and are written. */
  signal?: AbortSignal
  /** Diagnostics (stderr). */
  log: (line: string) => void
}

export interface BatchSummary {
  output: string
  shard?: string
  /** Records read from the input (every shard's, bad ones included). */
  total: number
  notInShard: number
  skippedResume: number
  /** Lines written by this run. */
  written: number
  scored: number
  cached: number
  failed: number
  failuresByCode: Partial<Record<ErrorCode, number>>
  /** Lines written per second of processing (model loading excluded). */
  imagesPerSecond: number
  wallSeconds: number
  /** CPU time of the whole process (all threads: ONNX Runtime, libvips) during processing. */
  cpuSeconds: number
  interrupted: boolean
  resumed?: { linesKept: number; failedKept: number; failedDropped: number; tornBytes: number; unparsable: number }
  cache?: { path: string; hits: number; misses: number; writeErrors: number }
}

async function readLocalFile(path: string, maxBytes: number): Promise<Buffer> {
  let fh
  try {
    fh = await openFile(path, 'r')
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error'
    throw new NimaError('NIMA_MISSING_IMAGE', `cannot open the file (${code})`, { cause: err })
  }
  try {
    const st = await fh.stat()
    if (!st.isFile()) throw new NimaError('NIMA_MISSING_IMAGE', 'not a regular file')
    if (st.size > maxBytes) throw new NimaError('NIMA_PAYLOAD_TOO_LARGE', `the file has ${st.size} bytes; the limit is ${maxBytes} (BODY_LIMIT_BYTES)`)
    return await fh.readFile()
  } catch (err) {
    if (err instanceof NimaError) throw err
    const code = (err as NodeJS.ErrnoException).code ?? 'error'
    throw new NimaError('NIMA_MISSING_IMAGE', `cannot read the file (${code})`, { cause: err })
  } finally {
    await fh.close()
  }
}


/** The error of a failed line: the code, and for a bug the underlying message rather than a generic one. */
function lineError(err: unknown): { code: ErrorCode; message: string } {
  const e = toNimaError(err)
  if (e.code === 'NIMA_INTERNAL') {
    const cause = e.cause instanceof Error ? e.cause.message : String(e.cause)
    return { code: e.code, message: `internal error: ${cause}` }
  }
  return { code: e.code, message: e.message }
}

/** Runs the batch and returns its summary. Fails only when the output cannot be written. */
export async function runBatch(options: BatchRunOptions, deps: BatchRunDeps): Promise<BatchSummary> {
  const started = performance.now()
  const cpuAtStart = process.cpuUsage()
  const { scorer, models, cache, log } = deps
  const existing: ExistingResults = await prepareOutput(options.output, options.mode)
  if (existing.tornBytes > 0) log(`batch: cut a torn last line (${existing.tornBytes} bytes) from ${options.output}`)
  const writer = await ResultWriter.open(options.output, { flushLines: options.flushLines, flushMs: options.flushMs })

  const modelInfo = Object.fromEntries(
    models.map((m) => [m.info.id, { id: m.info.id, version: m.info.version, task: m.info.task, synthetic: m.info.synthetic, sha256: m.manifest.sha256 }]),
  )
  const scoreGate = createLimiter(options.scoreSlots)
  // Identical bytes in flight at once are scored once; the later ones wait for the first.
  const inflightScores = new Map<string, Promise<ImageScore & { cached: boolean }>>()

  const summary: BatchSummary = {
    output: options.output,
    ...(options.shard ? { shard: `${options.shard.index}/${options.shard.count}` } : {}),
    total: 0,
    notInShard: 0,
    skippedResume: 0,
    written: 0,
    scored: 0,
    cached: 0,
    failed: 0,
    failuresByCode: {},
    imagesPerSecond: 0,
    wallSeconds: 0,
    cpuSeconds: 0,
    interrupted: false,
    ...(options.mode !== 'new'
      ? { resumed: { linesKept: existing.lines, failedKept: existing.failed, failedDropped: existing.dropped, tornBytes: existing.tornBytes, unparsable: existing.unparsable } }
      : {}),
  }
  // Progress in input bytes: the bytes read, scaled by the share of the records read that
  // are finished (read-ahead alone would show a small input as done long before it is;
  // items finish out of order, so no byte offset marks "everything before is done").
  let inputBytes = 0
  const bytesDone = (): number => {
    const finished = summary.written + summary.skippedResume + summary.notInShard
    return summary.total === 0 ? 0 : Math.round((inputBytes * finished) / summary.total)
  }
  const snapshot = (): ProgressSnapshot => ({
    done: summary.written,
    scored: summary.scored,
    cached: summary.cached,
    failed: summary.failed,
    skipped: summary.skippedResume,
    inputBytes: bytesDone(),
    elapsedS: (performance.now() - started) / 1000,
  })

  /**
   * Scores for these bytes through the cache rule the service uses, with `cached` when no
   * model ran for them (every score from the cache, or from an identical image of this run).
   */
  const scoresFor = async (bytes: Buffer, sha: string): Promise<ImageScore & { cached: boolean }> => {
    if (!cache) return { ...(await scoreGate.run(() => scorer.scoreBytes(bytes, models, deps.weights))), cached: false }
    const pending = inflightScores.get(sha)
    if (pending) return { ...(await pending), cached: true }
    const run = scoreGate.run(async () => {
      const served = await scoreThroughStore(cache, scorer, bytes, sha, models, { weights: deps.weights })
      return { ...served.score, cached: !served.inferred }
    })
    inflightScores.set(sha, run)
    try {
      return await run
    } finally {
      inflightScores.delete(sha)
    }
  }

  const processItem = async (item: InputItem): Promise<ResultLine> => {
    const ids = {
      key: item.key,
      line: item.line,
      ...(item.hotelId !== undefined ? { hotel_id: item.hotelId } : {}),
      ...(item.imageId !== undefined ? { image_id: item.imageId } : {}),
      ...(item.source !== undefined ? { source: item.source } : {}),
    }
    if (item.error) return { ...ids, cached: false, error: item.error }
    const source = item.source!
    let content: { sha256: string; bytes: number } | undefined
    try {
      let bytes: Buffer
      if (item.isUrl) {
        bytes = (await deps.images.fetch(source)).bytes
      } else {
        bytes = await readLocalFile(source, options.maxFileBytes)
      }
      const sha = imageId(bytes)
      content = { sha256: sha, bytes: bytes.length }
      const r = await scoresFor(bytes, sha)
      return {
        ...ids,
        ...content,
        width: r.image.width,
        height: r.image.height,
        format: r.image.format,
        preprocess: r.image.preprocess,
        phash: r.image.phash,
        phashCrops: r.image.phashCrops,
        scores: r.scores,
        combined: r.combined,
        models: modelInfo,
        cached: r.cached,
      }
    } catch (err) {
      return { ...ids, ...content, cached: false, error: lineError(err) }
    }
  }

  const record = (result: ResultLine): void => {
    writer.append(result)
    summary.written += 1
    if (result.error) {
      summary.failed += 1
      summary.failuresByCode[result.error.code] = (summary.failuresByCode[result.error.code] ?? 0) + 1
    } else if (result.cached) summary.cached += 1
    else summary.scored += 1
    deps.progress?.update(snapshot())
  }

  const inflight = new Set<Promise<void>>()
  const traces = new TraceChunks()
  let writeFailure: unknown
  try {
    for await (const item of deps.items) {
      if (deps.signal?.aborted) {
        summary.interrupted = true
        break
      }
      summary.total += 1
      inputBytes = Math.max(inputBytes, item.bytesRead)
      if (!inShard(item.key, options.shard)) {
        summary.notInShard += 1
        continue
      }
      if (existing.keys.size > 0 && existing.keys.has(item.key)) {
        summary.skippedResume += 1
        if (summary.skippedResume % 1000 === 0) deps.progress?.update(snapshot())
        continue
      }
      const task: Promise<void> = traces
        .run(item.line, () => processItem(item), (r) => (r.error ? { 'error.type': r.error.code } : { 'nima.batch.cached': r.cached }))
        .then(record)
        .catch((err: unknown) => {
          writeFailure ??= err
        })
        .finally(() => inflight.delete(task))
      inflight.add(task)
      if (inflight.size >= options.concurrency) await Promise.race(inflight)
      if (writer.pending >= 4 * (options.flushLines ?? 64)) await writer.flush()
      if (writeFailure !== undefined) break
    }
  } finally {
    await Promise.allSettled(inflight)
    traces.close()
    deps.progress?.stop(snapshot())
    try {
      await writer.close()
    } catch (err) {
      writeFailure ??= err
    }
  }
  if (writeFailure !== undefined) throw writeFailure
  const wall = (performance.now() - started) / 1000
  summary.wallSeconds = Math.round(wall * 1000) / 1000
  summary.imagesPerSecond = Math.round((summary.written / Math.max(wall, 1e-9)) * 100) / 100
  const cpu = process.cpuUsage(cpuAtStart)
  summary.cpuSeconds = Math.round((cpu.user + cpu.system) / 1000) / 1000
  if (cache) summary.cache = { path: cache.path, hits: cache.stats.hits, misses: cache.stats.misses, writeErrors: cache.stats.writeErrors }
  return summary
}
