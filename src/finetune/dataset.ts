import { createHash } from 'node:crypto'
import { open, readdir, readFile } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { parseExport, type ExportRow } from '../labels/export.js'
import { LabelStore, validateRating } from '../labels/store.js'
import { FinetuneError } from './finetune-error.js'
import { estimateRatingStd, type StdEstimate } from '../labels/rating-spread.js'
import { targetsByImage, type LabelRecord } from './targets.js'

/**
 * Labelled images for training, read from a label database (SQLite) or from an export
 * (JSONL/CSV) plus the image files. Each image gets its target distribution (see
 * targets.ts) and a group: the group stored with it (a hotel, a source photo), or itself.
 */
export interface LabelledImage {
  id: string
  group: string
  target: Float64Array
  /** Number of ratings behind the target. */
  ratings: number
  load: () => Promise<Uint8Array>
}

export interface Dataset {
  images: LabelledImage[]
  records: LabelRecord[]
  ratingStd: StdEstimate
  /** sha256 of the canonical label list and the σ used: identifies the training data. */
  dataSha256: string
  /** What the labels were read from. */
  source: { kind: 'sqlite' | 'export'; path: string }
  close(): void
}

export interface DatasetOptions {
  /** Folder searched (recursively) for image files whose sha256 an export names. */
  imagesDir?: string
  /** σ for single ratings: a number, or 'auto' to estimate it from repeated ratings. */
  ratingStd: number | 'auto'
}

const SQLITE_MAGIC = 'SQLite format 3\0'

async function isSqlite(path: string): Promise<boolean> {
  const fh = await open(path, 'r')
  try {
    const buf = Buffer.alloc(16)
    const { bytesRead } = await fh.read(buf, 0, 16, 0)
    return bytesRead === 16 && buf.toString('latin1') === SQLITE_MAGIC
  } finally {
    await fh.close()
  }
}

async function* walk(dir: string): AsyncGenerator<string> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const p = join(dir, entry.name)
    if (entry.isDirectory()) yield* walk(p)
    else if (entry.isFile()) yield p
  }
}

/** sha256 → path for every file under dir (only those in `wanted`). */
export async function indexImages(dir: string, wanted: ReadonlySet<string>): Promise<Map<string, string>> {
  const found = new Map<string, string>()
  for await (const path of walk(dir)) {
    const id = createHash('sha256').update(await readFile(path)).digest('hex')
    if (wanted.has(id) && !found.has(id)) found.set(id, path)
  }
  return found
}

/** The canonical label list hashed into dataSha256: one sorted line per label. */
export function dataDigest(records: readonly (LabelRecord & { group?: string | null })[], sigma: number): string {
  const lines = records
    .map((r) => [r.imageId, r.group ?? '', r.rater, r.rating ?? '', r.histogram ? r.histogram.join(' ') : ''].join('\t'))
    .sort()
  return createHash('sha256').update(`nima-labels v1 sigma=${sigma}\n${lines.join('\n')}\n`).digest('hex')
}

function build(
  rows: readonly (LabelRecord & { group?: string | null })[],
  loaders: Map<string, () => Promise<Uint8Array>>,
  options: DatasetOptions,
  source: Dataset['source'],
  close: () => void,
): Dataset {
  for (const r of rows) {
    try {
      validateRating(r)
    } catch (err) {
      throw new FinetuneError(`label of image ${r.imageId} by ${r.rater}: ${(err as Error).message}`)
    }
  }
  const estimate = estimateRatingStd(rows)
  const ratingStd: StdEstimate = options.ratingStd === 'auto' ? estimate : { ...estimate, sigma: options.ratingStd, source: 'fixed' }
  const targets = targetsByImage(rows, ratingStd.sigma)
  const groups = new Map<string, string>()
  for (const r of rows) if (r.group && !groups.has(r.imageId)) groups.set(r.imageId, r.group)
  const images: LabelledImage[] = []
  for (const [id, { target, count }] of targets) {
    const load = loaders.get(id)
    if (!load) throw new FinetuneError(`no image file for ${id}`)
    images.push({ id, group: groups.get(id) ?? id, target, ratings: count, load })
  }
  return { images, records: [...rows], ratingStd, dataSha256: dataDigest(rows, ratingStd.sigma), source, close }
}

export async function loadDataset(path: string, options: DatasetOptions): Promise<Dataset> {
  const full = resolve(path)
  let sqlite: boolean
  try {
    sqlite = await isSqlite(full)
  } catch (err) {
    throw new FinetuneError(`cannot read labels ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err })
  }
  if (sqlite) {
    const store = await LabelStore.open(full, { readOnly: true })
    try {
      const rows = [...store.exportRows()]
      const loaders = new Map<string, () => Promise<Uint8Array>>()
      for (const r of rows) {
        loaders.set(r.imageId, async () => {
          const data = store.imageData(r.imageId)
          if (!data) throw new FinetuneError(`image ${r.imageId} has ratings but no data in ${path}`)
          return data
        })
      }
      return build(rows, loaders, options, { kind: 'sqlite', path: full }, () => store.close())
    } catch (err) {
      store.close()
      throw err
    }
  }

  let rows: ExportRow[]
  try {
    rows = parseExport(await readFile(full, 'utf8'))
  } catch (err) {
    throw new FinetuneError(`labels ${path}: ${(err as Error).message}`, { cause: err })
  }
  const loaders = new Map<string, () => Promise<Uint8Array>>()
  for (const r of rows) if (r.path) loaders.set(r.imageId, () => readFile(resolve(dirname(full), r.path!)))
  const missing = new Set(rows.map((r) => r.imageId).filter((id) => !loaders.has(id)))
  if (missing.size > 0) {
    if (!options.imagesDir) throw new FinetuneError(`labels ${path} name ${missing.size} images without a path; pass --images <folder> holding them`, { usage: true })
    const found = await indexImages(options.imagesDir, missing)
    for (const [id, p] of found) loaders.set(id, () => readFile(p))
    const still = [...missing].filter((id) => !found.has(id))
    if (still.length > 0) throw new FinetuneError(`${still.length} labelled images are not in ${options.imagesDir} (first: ${still[0]})`)
  }
  return build(rows, loaders, options, { kind: 'export', path: full }, () => {})
}
