/**
 * rank-hotels: batch results (JSONL, one or more files, e.g. one per shard) in, one line
 * per hotel out, its images best first by the service's one ranking rule
 * (src/scoring/ranking.ts, shared with POST /rank), byte-identical images listed once with
 * their duplicates, near-duplicates (by the `phash` of each line) folded into the best of
 * them with the same defaults as /rank, optionally the first k picked for diversity,
 * failed images apart. Lines written before batch carried `phash` are never grouped;
 * lines without `phashCrops` group by the whole-frame hash alone (no crop tolerance).
 *
 * Memory: a hotel's images must be together to be ranked, and a results file is in
 * completion order, not grouped. With one partition every image's compact entry
 * (~400 bytes, a quarter of it the crop hashes) is held at once; with P partitions a
 * first pass spreads the entries over P temporary files by hash(hotel_id), and each is
 * then ranked on its own, so memory is about one P-th of that. The default picks P from the input size (one per 256 MiB).
 */
import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { mkdir, mkdtemp, open, rename, rm, stat, type FileHandle } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { tmpdir } from 'node:os'
import type { CombinedScore } from '../scoring/combined.js'
import { isPhash, isPhashCrops } from '../imaging/phash.js'
import { rankImages, resolveRankOptions, type RankOptions, type RequestedRankOptions } from '../scoring/ranking.js'
import { readLines } from './line-reader.js'

export interface RankHotelsOptions {
  inputs: readonly string[]
  output: string
  /** Number of partitions; default: one per 256 MiB of input. */
  partitions?: number
  /** Where partition files go; default: the OS temp folder. */
  tmpDir?: string
  /** Near-duplicate grouping and selection, as POST /rank takes them; defaults as there. */
  rank?: RequestedRankOptions
}

export interface RankHotelsSummary {
  output: string
  hotels: number
  /** Distinct images ranked (duplicates not counted). */
  ranked: number
  duplicates: number
  /** Images folded into a better one as near-duplicates (their byte-identical copies included). */
  nearDuplicates: number
  failed: number
  /** Result lines without a hotel_id (not ranked). */
  withoutHotel: number
  /** Lines that are not results (corrupt), and torn last lines. */
  unparsable: number
  /** Lines superseded by a later line with the same key and hotel. */
  superseded: number
  partitions: number
  wallSeconds: number
}

/** What ranking needs from one result line. */
interface Entry {
  key: string
  line: number
  image_id?: string
  source?: string
  sha256?: string
  phash?: string
  phashCrops?: string[]
  combined?: CombinedScore
  scores?: Record<string, number>
  tasks?: Record<string, string>
  error?: { code: string; message: string }
}

interface HotelLine {
  hotel_id: string
  ranked: {
    rank: number
    selected?: boolean
    key: string
    image_id?: string
    source?: string
    sha256?: string
    combined: CombinedScore
    scores: Record<string, number>
    duplicates: { key: string; image_id?: string; source?: string }[]
    near_duplicates: { key: string; image_id?: string; source?: string; distance: number; similarity: number }[]
  }[]
  failed: { key: string; image_id?: string; source?: string; error: { code: string; message: string } }[]
}

export const BYTES_PER_PARTITION = 256 * 1024 * 1024

type Parsed = { hotel: string; entry: Entry } | 'no-hotel' | 'unparsable'

function str(v: unknown): string | undefined {
  return typeof v === 'string' ? v : typeof v === 'number' && Number.isFinite(v) ? String(v) : undefined
}

/** The compact entry of one results line. */
export function parseResult(text: string): Parsed {
  let v: Record<string, unknown>
  try {
    const parsed: unknown = JSON.parse(text)
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return 'unparsable'
    v = parsed as Record<string, unknown>
  } catch {
    return 'unparsable'
  }
  const key = str(v['key'])
  if (key === undefined) return 'unparsable'
  const hotel = str(v['hotel_id'])
  if (hotel === undefined) return 'no-hotel'
  const entry: Entry = { key, line: typeof v['line'] === 'number' ? v['line'] : Number.MAX_SAFE_INTEGER }
  const imageId = str(v['image_id'])
  const source = str(v['source'])
  const sha = str(v['sha256'])
  if (imageId !== undefined) entry.image_id = imageId
  if (source !== undefined) entry.source = source
  if (sha !== undefined) entry.sha256 = sha
  if (isPhash(v['phash'])) entry.phash = v['phash']
  if (isPhashCrops(v['phashCrops'])) entry.phashCrops = v['phashCrops']
  const error = v['error'] as { code?: unknown; message?: unknown } | undefined
  const combined = v['combined'] as { score?: unknown; weights?: unknown } | undefined
  if (error !== undefined && error !== null) {
    entry.error = { code: String(error.code ?? 'NIMA_INTERNAL'), message: String(error.message ?? '') }
  } else if (typeof combined?.score === 'number') {
    const weights: Record<string, number> = {}
    for (const [id, w] of Object.entries((combined.weights ?? {}) as Record<string, unknown>)) if (typeof w === 'number') weights[id] = w
    entry.combined = { score: combined.score, weights }
    const scores: Record<string, number> = {}
    for (const [id, s] of Object.entries((v['scores'] ?? {}) as Record<string, { mean?: unknown }>)) {
      if (typeof s?.mean === 'number') scores[id] = s.mean
    }
    entry.scores = scores
    const tasks: Record<string, string> = {}
    for (const [id, m] of Object.entries((v['models'] ?? {}) as Record<string, { task?: unknown }>)) {
      if (typeof m?.task === 'string') tasks[id] = m.task
    }
    entry.tasks = tasks
  } else {
    entry.error = { code: 'NIMA_INTERNAL', message: 'result line has neither scores nor an error' }
  }
  return { hotel, entry }
}

/** Ranks one hotel's entries. A key seen more than once keeps its last successful line (else its last line). */
export function rankHotel(
  hotel: string,
  entries: readonly Entry[],
  options: RankOptions = resolveRankOptions(),
): { line: HotelLine; superseded: number; duplicates: number; nearDuplicates: number } {
  const byKey = new Map<string, Entry>()
  let superseded = 0
  for (const e of entries) {
    const prev = byKey.get(e.key)
    if (prev) {
      superseded += 1
      if (prev.error === undefined && e.error !== undefined) continue
    }
    byKey.set(e.key, e)
  }
  const ok: Entry[] = []
  const bad: Entry[] = []
  for (const e of byKey.values()) (e.error === undefined ? ok : bad).push(e)
  bad.sort((a, b) => a.line - b.line)
  let duplicates = 0
  let nearDuplicates = 0
  const ids = (e: Entry) => ({ key: e.key, ...(e.image_id !== undefined ? { image_id: e.image_id } : {}), ...(e.source !== undefined ? { source: e.source } : {}) })
  const ranked = rankImages(
    ok.map((e) => ({
      index: e.line,
      contentKey: e.sha256 ?? `key:${e.key}`,
      ...(e.phash !== undefined ? { phash: e.phash } : {}),
      ...(e.phashCrops !== undefined ? { phashCrops: e.phashCrops } : {}),
      combined: e.combined!.score,
      means: e.scores ?? {},
      tasks: e.tasks ?? {},
      item: e,
    })),
    options,
  ).map(({ rank, selected, item: first, duplicates: rest, nearDuplicates: near }) => {
    duplicates += rest.length
    nearDuplicates += near.length
    return {
      rank,
      ...(selected !== undefined ? { selected } : {}),
      key: first.key,
      ...(first.image_id !== undefined ? { image_id: first.image_id } : {}),
      ...(first.source !== undefined ? { source: first.source } : {}),
      ...(first.sha256 !== undefined ? { sha256: first.sha256 } : {}),
      combined: first.combined!,
      scores: first.scores ?? {},
      duplicates: rest.map(ids),
      near_duplicates: near.map((n) => ({ ...ids(n.item), distance: n.distance, similarity: n.similarity })),
    }
  })
  const failed = bad.map((e) => ({
    key: e.key,
    ...(e.image_id !== undefined ? { image_id: e.image_id } : {}),
    ...(e.source !== undefined ? { source: e.source } : {}),
    error: e.error!,
  }))
  return { line: { hotel_id: hotel, ranked, failed }, superseded, duplicates, nearDuplicates }
}

/** Buffered line writer over a file handle. */
class LineSink {
  readonly #fh: FileHandle
  #buf: string[] = []
  #bytes = 0
  constructor(fh: FileHandle) {
    this.#fh = fh
  }
  async write(line: string): Promise<void> {
    this.#buf.push(line, '\n')
    this.#bytes += line.length + 1
    if (this.#bytes >= 1 << 20) await this.flush()
  }
  async flush(): Promise<void> {
    if (this.#buf.length === 0) return
    const data = this.#buf.join('')
    this.#buf = []
    this.#bytes = 0
    await this.#fh.write(data)
  }
  async close(sync: boolean): Promise<void> {
    await this.flush()
    if (sync) await this.#fh.sync()
    await this.#fh.close()
  }
}

function partitionOf(hotel: string, count: number): number {
  return count === 1 ? 0 : createHash('sha256').update(hotel).digest().readUInt32BE(0) % count
}

export async function rankHotels(options: RankHotelsOptions): Promise<RankHotelsSummary> {
  const started = performance.now()
  let totalBytes = 0
  for (const input of options.inputs) totalBytes += (await stat(input)).size
  const partitions = options.partitions ?? Math.max(1, Math.ceil(totalBytes / BYTES_PER_PARTITION))
  const summary: RankHotelsSummary = { output: options.output, hotels: 0, ranked: 0, duplicates: 0, nearDuplicates: 0, failed: 0, withoutHotel: 0, unparsable: 0, superseded: 0, partitions, wallSeconds: 0 }

  await mkdir(dirname(options.output), { recursive: true })
  const tmpOut = `${options.output}.tmp-${process.pid}`
  const out = new LineSink(await open(tmpOut, 'w'))
  const rankOptions = resolveRankOptions(options.rank)
  const emit = async (hotel: string, entries: readonly Entry[]): Promise<void> => {
    const r = rankHotel(hotel, entries, rankOptions)
    summary.hotels += 1
    summary.ranked += r.line.ranked.length
    summary.failed += r.line.failed.length
    summary.duplicates += r.duplicates
    summary.nearDuplicates += r.nearDuplicates
    summary.superseded += r.superseded
    await out.write(JSON.stringify(r.line))
  }
  const scan = async function* (path: string): AsyncGenerator<{ hotel: string; entry: Entry }> {
    for await (const l of readLines(createReadStream(path), { maxLineBytes: 16 * 1024 * 1024 })) {
      if (l.text.trim() === '' && !l.tooLong) continue
      if (!l.terminated || l.tooLong) {
        summary.unparsable += 1
        continue
      }
      const p = parseResult(l.text)
      if (p === 'unparsable') summary.unparsable += 1
      else if (p === 'no-hotel') summary.withoutHotel += 1
      else yield p
    }
  }

  let workDir: string | undefined
  try {
    if (partitions === 1) {
      const hotels = new Map<string, Entry[]>()
      for (const input of options.inputs) {
        for await (const { hotel, entry } of scan(input)) {
          const list = hotels.get(hotel)
          if (list) list.push(entry)
          else hotels.set(hotel, [entry])
        }
      }
      for (const [hotel, entries] of hotels) await emit(hotel, entries)
    } else {
      workDir = await mkdtemp(join(options.tmpDir ?? tmpdir(), 'nima-rank-'))
      const sinks = await Promise.all(Array.from({ length: partitions }, async (_, i) => new LineSink(await open(join(workDir!, `part-${i}.jsonl`), 'w'))))
      try {
        for (const input of options.inputs) {
          for await (const { hotel, entry } of scan(input)) await sinks[partitionOf(hotel, partitions)]!.write(JSON.stringify([hotel, entry]))
        }
      } finally {
        await Promise.all(sinks.map((s) => s.close(false)))
      }
      for (let i = 0; i < partitions; i++) {
        const hotels = new Map<string, Entry[]>()
        for await (const l of readLines(createReadStream(join(workDir, `part-${i}.jsonl`)), { maxLineBytes: 16 * 1024 * 1024 })) {
          if (l.text === '') continue
          const [hotel, entry] = JSON.parse(l.text) as [string, Entry]
          const list = hotels.get(hotel)
          if (list) list.push(entry)
          else hotels.set(hotel, [entry])
        }
        for (const [hotel, entries] of hotels) await emit(hotel, entries)
        await rm(join(workDir, `part-${i}.jsonl`), { force: true })
      }
    }
    await out.close(true)
    await rename(tmpOut, options.output)
  } catch (err) {
    await out.close(false).catch(() => {})
    await rm(tmpOut, { force: true })
    throw err
  } finally {
    if (workDir) await rm(workDir, { recursive: true, force: true })
  }
  summary.wallSeconds = Math.round(performance.now() - started) / 1000
  return summary
}
