/**
 * Batch input: a stream of items, one per image, read in bounded memory from
 * - txt: one path or URL per line; blank lines and lines starting with # are skipped;
 * - csv: a header row, then records with `url` or `path`, optionally `hotel_id` and
 *   `image_id` (quoted fields, embedded commas and newlines work; csv-parse);
 * - jsonl: one JSON object per line with the same field names.
 * A bad record (unparsable JSON, no url/path, wrong CSV field count) becomes an item
 * carrying an `error`, never a thrown exception: it ends up as an error line.
 */
import { createReadStream } from 'node:fs'
import { extname } from 'node:path'
import type { Readable } from 'node:stream'
import { parse as parseCsv, type CsvError } from 'csv-parse'
import type { ErrorCode } from '../errors.js'
import { readLines, type LineReaderOptions } from './line-reader.js'
import { kFailureKind } from '../errors.js'

export const INPUT_FORMATS = ['txt', 'csv', 'jsonl'] as const
export type InputFormat = (typeof INPUT_FORMATS)[number]

export interface InputItem {
  /** Identity of the item: what resume skips and sharding hashes. See {@link itemKey}. */
  key: string
  /** 1-based line of the record in the input (for CSV: the line where the record ends). */
  line: number
  /** The path or URL, as written in the input. */
  source?: string
  /** Whether `source` is fetched over the network (`url` field or a txt line with a scheme). */
  isUrl?: boolean
  hotelId?: string
  imageId?: string
  /** Set when the record itself is unusable. */
  error?: { code: ErrorCode; message: string }
  /** Input bytes consumed up to and including this record, for progress. */
  bytesRead: number
}

/** Thrown for input that cannot be read at all (not for a bad record). */
export class InputError extends Error {
  override name = 'InputError'
  readonly [kFailureKind] = 'failed' as const
}

const EXTENSIONS: Record<string, InputFormat> = { '.txt': 'txt', '.list': 'txt', '.csv': 'csv', '.jsonl': 'jsonl', '.ndjson': 'jsonl' }

/** Format from the file extension; undefined when it says nothing we know. */
export function formatFromPath(path: string): InputFormat | undefined {
  return EXTENSIONS[extname(path).toLowerCase()]
}

/**
 * The key of an item: `hotel_id/image_id` when both are given (image ids are often only
 * unique within a hotel), else `image_id`, else the source string. A record with none
 * of these gets `line:<n>`, stable for the same input file.
 */
export function itemKey(fields: { hotelId?: string; imageId?: string; source?: string }, line: number): string {
  if (fields.imageId !== undefined) return fields.hotelId !== undefined ? `${fields.hotelId}/${fields.imageId}` : fields.imageId
  return fields.source ?? `line:${line}`
}

const SCHEME = /^[a-z][a-z0-9+.-]*:\/\//i

function invalid(fields: Omit<InputItem, 'key' | 'error'>, message: string): InputItem {
  return { ...fields, key: itemKey(fields, fields.line), error: { code: 'NIMA_INVALID_REQUEST', message } }
}

/** A field value as a string: strings trimmed, finite numbers converted, empty → undefined. */
function fieldText(value: unknown, name: string): string | undefined {
  if (value === undefined || value === null) return undefined
  if (typeof value === 'number' && Number.isFinite(value)) return String(value)
  if (typeof value !== 'string') throw new TypeError(`${name} must be a string or a number, got ${Array.isArray(value) ? 'an array' : typeof value}`)
  const text = value.trim()
  return text === '' ? undefined : text
}

/** Builds an item from a CSV record or JSON object with url/path/hotel_id/image_id fields. */
function itemFromFields(record: Record<string, unknown>, line: number, bytesRead: number): InputItem {
  const base: Omit<InputItem, 'key' | 'error'> = { line, bytesRead }
  let url: string | undefined
  let path: string | undefined
  try {
    const hotelId = fieldText(record['hotel_id'], 'hotel_id')
    const imageId = fieldText(record['image_id'], 'image_id')
    if (hotelId !== undefined) base.hotelId = hotelId
    if (imageId !== undefined) base.imageId = imageId
    url = fieldText(record['url'], 'url')
    path = fieldText(record['path'], 'path')
  } catch (err) {
    return invalid(base, `line ${line}: ${(err as Error).message}`)
  }
  if (url !== undefined && path !== undefined) return invalid(base, `line ${line}: has both url and path; give one`)
  if (url === undefined && path === undefined) return invalid(base, `line ${line}: has no url or path`)
  const source = (url ?? path)!
  const item: InputItem = { ...base, source, isUrl: url !== undefined, key: '' }
  item.key = itemKey(item, line)
  return item
}

async function* readTxt(stream: Readable, options: LineReaderOptions): AsyncGenerator<InputItem> {
  for await (const l of readLines(stream, options)) {
    if (l.tooLong) {
      yield invalid({ line: l.number, bytesRead: l.end }, `line ${l.number}: longer than the line length limit`)
      continue
    }
    const text = l.text.trim()
    if (text === '' || text.startsWith('#')) continue
    yield { key: itemKey({ source: text }, l.number), line: l.number, source: text, isUrl: SCHEME.test(text), bytesRead: l.end }
  }
}

async function* readJsonl(stream: Readable, options: LineReaderOptions): AsyncGenerator<InputItem> {
  for await (const l of readLines(stream, options)) {
    if (l.tooLong) {
      yield invalid({ line: l.number, bytesRead: l.end }, `line ${l.number}: longer than the line length limit`)
      continue
    }
    if (l.text.trim() === '') continue
    let value: unknown
    try {
      value = JSON.parse(l.text)
    } catch (err) {
      yield invalid({ line: l.number, bytesRead: l.end }, `line ${l.number}: not valid JSON (${(err as Error).message})`)
      continue
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      yield invalid({ line: l.number, bytesRead: l.end }, `line ${l.number}: expected a JSON object, got ${Array.isArray(value) ? 'an array' : value === null ? 'null' : typeof value}`)
      continue
    }
    yield itemFromFields(value as Record<string, unknown>, l.number, l.end)
  }
}

interface CsvRow {
  record: Record<string, string>
  info: { lines: number; bytes: number; invalid_field_length: number }
}

async function* readCsv(stream: Readable, maxRecordBytes: number): AsyncGenerator<InputItem> {
  const skipped: InputItem[] = []
  let header: string[] | undefined
  const parser = stream.pipe(
    parseCsv({
      bom: true,
      columns: (names: string[]) => {
        header = names.map((n) => n.trim().toLowerCase())
        if (!header.includes('url') && !header.includes('path')) {
          throw new InputError(`CSV header has no "url" or "path" column (found: ${header.map((n) => JSON.stringify(n)).join(', ') || 'nothing'})`)
        }
        return header
      },
      info: true,
      trim: true,
      skip_empty_lines: true,
      relax_column_count: true,
      skip_records_with_error: true,
      max_record_size: maxRecordBytes,
      on_skip: (err: CsvError | undefined) => {
        const line = typeof err?.lines === 'number' ? err.lines : 0
        skipped.push(invalid({ line, bytesRead: 0 }, `line ${line}: unreadable CSV record (${err?.message ?? 'unknown error'})`))
        return undefined
      },
    }),
  )
  // Shorter/longer records are accepted by relax_column_count, then refused here: a
  // URL with an unquoted comma would otherwise be silently cut at the comma.
  let invalidSoFar = 0
  let lastBytes = 0
  try {
    for await (const row of parser as AsyncIterable<CsvRow>) {
      // The parser runs ahead of us: report skipped records in line order.
      while (skipped.length > 0 && skipped[0]!.line < row.info.lines) yield { ...skipped.shift()!, bytesRead: lastBytes }
      lastBytes = row.info.bytes
      if (row.info.invalid_field_length > invalidSoFar) {
        invalidSoFar = row.info.invalid_field_length
        const ids: Omit<InputItem, 'key' | 'error'> = { line: row.info.lines, bytesRead: row.info.bytes }
        const hotelId = row.record['hotel_id']
        const imageId = row.record['image_id']
        if (hotelId) ids.hotelId = hotelId
        if (imageId) ids.imageId = imageId
        yield invalid(ids, `line ${row.info.lines}: expected ${header?.length ?? '?'} fields like the header (quote fields that contain commas)`)
        continue
      }
      yield itemFromFields(row.record, row.info.lines, row.info.bytes)
    }
  } catch (err) {
    if (err instanceof InputError) throw err
    const cause = (err as { cause?: unknown }).cause
    if (cause instanceof InputError) throw cause
    throw new InputError(`cannot read the CSV input: ${(err as Error).message}`, { cause: err })
  }
  for (const item of skipped) yield { ...item, bytesRead: lastBytes }
}

export interface ReadInputOptions extends LineReaderOptions {
  format: InputFormat
}

/** Streams the items of `path` ('-' for stdin). Throws InputError only when the input as a whole is unusable. */
export function readInput(path: string, options: ReadInputOptions): AsyncGenerator<InputItem> {
  const stream = path === '-' ? process.stdin : createReadStream(path, { highWaterMark: 256 * 1024 })
  return readInputStream(stream, options)
}

export async function* readInputStream(stream: Readable, options: ReadInputOptions): AsyncGenerator<InputItem> {
  try {
    switch (options.format) {
      case 'txt':
        yield* readTxt(stream, options)
        return
      case 'jsonl':
        yield* readJsonl(stream, options)
        return
      case 'csv':
        yield* readCsv(stream, options.maxLineBytes ?? 1024 * 1024)
        return
    }
  } catch (err) {
    if (err instanceof InputError) throw err
    const code = (err as { code?: unknown }).code
    throw new InputError(`cannot read the input${typeof code === 'string' ? ` (${code})` : ''}: ${(err as Error).message}`, { cause: err })
  } finally {
    stream.destroy()
  }
}
