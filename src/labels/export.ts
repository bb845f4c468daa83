import { parse, type CsvError } from 'csv-parse/sync'
import { stringify } from 'csv-stringify/sync'
/**
 * Label exports: one row per rating, as JSON Lines or CSV. Both carry the same fields; a
 * row names its image by sha256, so an export plus the image files (matched by the hash of
 * their bytes, or by an optional `path` relative to the export) is enough to fine-tune.
 */
export const EXPORT_FORMATS = ['jsonl', 'csv'] as const
export type ExportFormat = (typeof EXPORT_FORMATS)[number]

export interface ExportRow {
  id?: number
  imageId: string
  rater: string
  rating: number | null
  histogram: number[] | null
  createdAt?: string
  group?: string | null
  sourceUrl?: string | null
  format?: string
  /** Image file, relative to the export file (optional). */
  path?: string
}

export class ExportParseError extends Error {
  override name = 'ExportParseError'
}

const HIST = Array.from({ length: 10 }, (_, i) => `h${i + 1}`)
export const CSV_COLUMNS = ['id', 'imageId', 'rater', 'rating', ...HIST, 'createdAt', 'group', 'sourceUrl', 'format', 'path'] as const

export function contentType(format: ExportFormat): string {
  return format === 'csv' ? 'text/csv; charset=utf-8' : 'application/x-ndjson; charset=utf-8'
}

/** One CSV record: RFC 4180 quoting, CRLF ends; fields with any line break or edge spaces quoted so they survive every reader. */
function csvRecord(values: readonly unknown[]): string {
  return stringify([values.map((v) => (v === null || v === undefined ? '' : String(v)))], { record_delimiter: 'windows', quoted_match: /[\r\n]|^\s|\s$/ })
}

export function csvHeader(): string {
  return csvRecord(CSV_COLUMNS)
}

export function formatRow(row: ExportRow, format: ExportFormat): string {
  if (format === 'jsonl') {
    const { id, imageId, rater, rating, histogram, createdAt, group, sourceUrl, path } = row
    return `${JSON.stringify({ id, imageId, rater, rating, histogram, createdAt, group: group ?? null, sourceUrl: sourceUrl ?? null, format: row.format, ...(path ? { path } : {}) })}\n`
  }
  const hist = row.histogram ?? new Array<null>(10).fill(null)
  return csvRecord([row.id, row.imageId, row.rater, row.rating, ...hist, row.createdAt, row.group, row.sourceUrl, row.format, row.path])
}

/** RFC 4180 records (quoted fields may hold commas, quotes and newlines), by csv-parse. */
export function parseCsv(text: string): string[][] {
  try {
    return parse(text, { relax_column_count: true, skip_empty_lines: true, record_delimiter: ['\r\n', '\n', '\r'] }) as string[][]
  } catch (err) {
    const e = err as CsvError
    if (e.code === 'CSV_QUOTE_NOT_CLOSED') throw new ExportParseError('CSV: a quoted field is not closed', { cause: err })
    throw new ExportParseError(`CSV: ${e.message}`, { cause: err })
  }
}

function toRow(obj: Record<string, unknown>, where: string): ExportRow {
  const imageId = obj['imageId']
  const rater = obj['rater']
  if (typeof imageId !== 'string' || !/^[0-9a-f]{64}$/.test(imageId)) throw new ExportParseError(`${where}: imageId must be a sha256 hex digest`)
  if (typeof rater !== 'string' || rater.length === 0) throw new ExportParseError(`${where}: rater is missing`)
  const rating = obj['rating'] ?? null
  const histogram = obj['histogram'] ?? null
  if (rating !== null && typeof rating !== 'number') throw new ExportParseError(`${where}: rating must be a number or null`)
  if (histogram !== null && !(Array.isArray(histogram) && histogram.every((x) => typeof x === 'number'))) {
    throw new ExportParseError(`${where}: histogram must be an array of numbers or null`)
  }
  if ((rating === null) === (histogram === null)) throw new ExportParseError(`${where}: expected exactly one of rating and histogram`)
  const str = (k: string) => (typeof obj[k] === 'string' && obj[k] !== '' ? (obj[k] as string) : undefined)
  return {
    ...(typeof obj['id'] === 'number' ? { id: obj['id'] } : {}),
    imageId,
    rater,
    rating: rating as number | null,
    histogram: histogram as number[] | null,
    ...(str('createdAt') ? { createdAt: str('createdAt') } : {}),
    group: str('group') ?? null,
    sourceUrl: str('sourceUrl') ?? null,
    ...(str('format') ? { format: str('format') } : {}),
    ...(str('path') ? { path: str('path') } : {}),
  }
}

/** Parses a JSONL or CSV export; the format is guessed from the first character when not given. */
export function parseExport(text: string, format?: ExportFormat): ExportRow[] {
  const body = text.replace(/^\uFEFF/, '')
  const kind = format ?? (body.trimStart().startsWith('{') ? 'jsonl' : 'csv')
  if (kind === 'jsonl') {
    return body
      .split('\n')
      .map((line, i) => [line.trim(), i + 1] as const)
      .filter(([line]) => line.length > 0)
      .map(([line, n]) => {
        let obj: unknown
        try {
          obj = JSON.parse(line)
        } catch (err) {
          throw new ExportParseError(`line ${n}: not JSON (${(err as Error).message})`)
        }
        if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) throw new ExportParseError(`line ${n}: expected a JSON object`)
        return toRow(obj as Record<string, unknown>, `line ${n}`)
      })
  }
  const [header, ...records] = parseCsv(body)
  if (!header) return []
  for (const required of ['imageId', 'rater']) if (!header.includes(required)) throw new ExportParseError(`CSV: header has no ${required} column`)
  return records.map((rec, r) => {
    const get = (k: string) => {
      const i = header.indexOf(k)
      return i >= 0 ? (rec[i] ?? '') : ''
    }
    const num = (k: string) => (get(k) === '' ? null : Number(get(k)))
    const hist = HIST.map((k) => num(k))
    const histogram = hist.every((v) => v === null) ? null : hist.map((v) => v ?? 0)
    const obj: Record<string, unknown> = {
      imageId: get('imageId'),
      rater: get('rater'),
      rating: num('rating'),
      histogram,
      createdAt: get('createdAt'),
      group: get('group'),
      sourceUrl: get('sourceUrl'),
      format: get('format'),
      path: get('path'),
    }
    if (get('id') !== '') obj['id'] = Number(get('id'))
    return toRow(obj, `CSV record ${r + 2}`)
  })
}
