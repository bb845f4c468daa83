/**
 * The results file: JSON lines appended through one file descriptor, flushed and
 * fsync'ed every `flushLines` lines or `flushMs` milliseconds, whichever comes first.
 *
 * Crash model: a killed process loses only lines still in its memory buffer (at most
 * `flushLines`, or `flushMs` worth); a power loss may also lose what the last fsync had
 * not covered. A write cut short leaves a last line without its `\n`: a torn line.
 * On resume, the file is scanned, the torn tail is cut off (truncated to the last `\n`)
 * before anything is appended, and every complete line's key is skipped.
 */
import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { mkdir, open, rename, stat, truncate, type FileHandle } from 'node:fs/promises'
import { dirname } from 'node:path'
import { readLines } from './line-reader.js'
import { kFailureKind } from '../errors.js'

/**
 * Keys already done, stored as 16-byte sha256 prefixes (about 60 bytes each in V8
 * instead of the key's own length): 5 M keys take about 300 MB.
 */
export class KeySet {
  readonly #set = new Set<string>()

  static digest(key: string): string {
    return createHash('sha256').update(key).digest('base64').slice(0, 22)
  }

  add(key: string): void {
    this.#set.add(KeySet.digest(key))
  }

  has(key: string): boolean {
    return this.#set.has(KeySet.digest(key))
  }

  get size(): number {
    return this.#set.size
  }
}

export type OutputMode = 'new' | 'resume' | 'retry-failed'

export interface ExistingResults {
  /** Keys with a line kept in the file: resume skips them. */
  keys: KeySet
  /** Complete lines kept. */
  lines: number
  /** Kept lines that carry an error (0 after retry-failed, which drops them). */
  failed: number
  /** Failed lines dropped by retry-failed. */
  dropped: number
  /** Bytes of a torn last line that were cut off. */
  tornBytes: number
  /** Complete lines that are not a JSON object with a string key (ignored). */
  unparsable: number
}

export class OutputError extends Error {
  override name = 'OutputError'
  readonly [kFailureKind] = 'failed' as const
}

interface ParsedLine {
  key: string
  failed: boolean
}

function parseResultLine(text: string): ParsedLine | undefined {
  try {
    const v = JSON.parse(text) as { key?: unknown; error?: unknown }
    if (typeof v !== 'object' || v === null || typeof v.key !== 'string') return undefined
    return { key: v.key, failed: v.error !== undefined && v.error !== null }
  } catch {
    return undefined
  }
}

async function fileSize(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).size
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
}

async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r')
  try {
    await fh.sync()
  } finally {
    await fh.close()
  }
}

/** Fails fast (before models load) when `mode` is `new` and `path` already has content. */
export async function checkOutputAvailable(path: string, mode: OutputMode): Promise<void> {
  if (mode !== 'new') return
  const size = await fileSize(path)
  if (size !== undefined && size > 0) throw existsError(path, size)
}

function existsError(path: string, size: number): OutputError {
  return new OutputError(`${path} already exists (${size} bytes): add --resume to continue it, --retry-failed to also redo its failures, or remove it`)
}

/** Results lines can be long (distributions, long URLs); a line beyond this is treated as corrupt. */
const MAX_RESULT_LINE_BYTES = 16 * 1024 * 1024

/**
 * Gets `path` ready for appending:
 * - `new`: refuses a non-empty existing file (a second run must say --resume);
 * - `resume`: keeps every complete line (successful or failed) and cuts a torn tail;
 * - `retry-failed`: rewrites the file without its failed lines (atomically: temp file,
 *   fsync, rename), so those keys run again and each key still has one line.
 */
export async function prepareOutput(path: string, mode: OutputMode): Promise<ExistingResults> {
  const result: ExistingResults = { keys: new KeySet(), lines: 0, failed: 0, dropped: 0, tornBytes: 0, unparsable: 0 }
  await mkdir(dirname(path), { recursive: true })
  const size = await fileSize(path)
  if (size === undefined || size === 0) return result
  if (mode === 'new') {
    throw existsError(path, size)
  }

  let validEnd = 0
  let out: FileHandle | undefined
  let outBuf: string[] = []
  const tmp = `${path}.compact-${process.pid}`
  const flushOut = async (): Promise<void> => {
    if (out && outBuf.length > 0) await out.write(outBuf.join(''))
    outBuf = []
  }
  if (mode === 'retry-failed') out = await open(tmp, 'w')
  try {
    for await (const l of readLines(createReadStream(path), { maxLineBytes: MAX_RESULT_LINE_BYTES })) {
      if (!l.terminated) break // torn tail: validEnd stays before it
      validEnd = l.end
      if (l.tooLong || l.text.trim() === '') {
        if (l.tooLong) result.unparsable += 1
        continue
      }
      const parsed = parseResultLine(l.text)
      if (!parsed) {
        result.unparsable += 1
        continue
      }
      if (mode === 'retry-failed' && parsed.failed) {
        result.dropped += 1
        continue
      }
      result.keys.add(parsed.key)
      result.lines += 1
      if (parsed.failed) result.failed += 1
      if (out) {
        outBuf.push(`${l.text}\n`)
        if (outBuf.length >= 1024) await flushOut()
      }
    }
    result.tornBytes = size - validEnd
    if (out) {
      await flushOut()
      await out.sync()
      await out.close()
      out = undefined
      await rename(tmp, path)
      await fsyncDir(dirname(path))
    } else if (result.tornBytes > 0) {
      await truncate(path, validEnd)
      const fh = await open(path, 'r+')
      try {
        await fh.sync()
      } finally {
        await fh.close()
      }
    }
  } catch (err) {
    if (out) {
      await out.close().catch(() => {})
      const { rm } = await import('node:fs/promises')
      await rm(tmp, { force: true })
    }
    throw err
  }
  return result
}

export interface ResultWriterOptions {
  /** Flush and fsync after this many buffered lines. Default 64. */
  flushLines?: number
  /** Flush and fsync a line at most this long after it was appended. Default 1000. */
  flushMs?: number
}

/** Appends JSON lines to one file descriptor with periodic write+fsync. */
export class ResultWriter {
  readonly #fh: FileHandle
  readonly #flushLines: number
  readonly #flushMs: number
  #buffer: string[] = []
  #chain: Promise<void> = Promise.resolve()
  #timer: NodeJS.Timeout | undefined
  #failure: unknown
  #closed = false
  #written = 0

  private constructor(fh: FileHandle, options: ResultWriterOptions) {
    this.#fh = fh
    this.#flushLines = options.flushLines ?? 64
    this.#flushMs = options.flushMs ?? 1000
  }

  static async open(path: string, options: ResultWriterOptions = {}): Promise<ResultWriter> {
    return new ResultWriter(await open(path, 'a'), options)
  }

  /** Lines appended and made durable so far. */
  get written(): number {
    return this.#written
  }

  /** Lines appended but not yet flushed. */
  get pending(): number {
    return this.#buffer.length
  }

  /** Queues one line. Throws if an earlier flush failed (disk full, I/O error): that is fatal to the run. */
  append(record: object): void {
    if (this.#failure !== undefined) throw this.#failure
    if (this.#closed) throw new Error('ResultWriter: append() after close()')
    this.#buffer.push(`${JSON.stringify(record)}\n`)
    if (this.#buffer.length >= this.#flushLines) void this.flush().catch(() => {})
    else this.#timer ??= setTimeout(() => void this.flush().catch(() => {}), this.#flushMs)
  }

  /** Writes and fsyncs everything appended so far; flushes run one after another. */
  flush(): Promise<void> {
    if (this.#timer) {
      clearTimeout(this.#timer)
      this.#timer = undefined
    }
    const lines = this.#buffer
    this.#buffer = []
    this.#chain = this.#chain.then(async () => {
      if (this.#failure !== undefined) throw this.#failure
      if (lines.length === 0) return
      try {
        const data = Buffer.from(lines.join(''))
        let off = 0
        while (off < data.length) off += (await this.#fh.write(data, off, data.length - off)).bytesWritten
        await this.#fh.datasync()
        this.#written += lines.length
      } catch (err) {
        this.#failure = err
        throw err
      }
    })
    return this.#chain
  }

  /** Flushes what is left and closes the descriptor. */
  async close(): Promise<void> {
    if (this.#closed) return
    try {
      await this.flush()
    } finally {
      this.#closed = true
      await this.#fh.close()
    }
  }
}
