import { existsSync, mkdirSync } from 'node:fs'
import { dirname, resolve } from 'node:path'
import sqlite3 from 'node-sqlite3-wasm'
import { claimDatabase, DatabaseOwnedError, type ClaimOptions, type Ownership } from './owner.js'
import { summarizeLabels, type LabelSummary, type RatingRow } from './summary.js'
import { kFailureKind } from '../errors.js'

/**
 * The labelling database: SQLite (compiled to WebAssembly by node-sqlite3-wasm, so it needs
 * no native build and no install script) in one file on disk, plus its WAL while open.
 * Images are stored once, by the sha256 of their bytes; ratings name an image, a rater and either an integer 1..10 or
 * a 10-bin vote histogram. A rater has at most one rating per image: rating again replaces it.
 *
 * Every call is synchronous and short. One live process opens a database at a time (the
 * service, or a CLI command); a second one is refused with a message naming the first.
 * The driver's own lock (a `<file>.lock` folder, held for the connection's life) is left
 * behind by a process that is killed: the next owner, having proved the last one dead,
 * removes it, and SQLite recovers the WAL (owner.ts says how the proof works, `connect`
 * why a WAL).
 */
const { Database } = sqlite3
type Db = InstanceType<typeof Database>
type Row = Record<string, unknown>

export const SCHEMA_VERSION = 1
/** How long a statement waits for another process's lock before failing as LOCKED. */
export const BUSY_TIMEOUT_MS = 1000
export const RATING_MIN = 1
export const RATING_MAX = 10
export const HISTOGRAM_BINS = 10
/** Rater and group names: letters, digits, space and . _ @ + -, 1..64 characters. */
export const NAME_PATTERN = /^[\p{L}\p{N}._@+ -]{1,64}$/u

const SCHEMA = `
CREATE TABLE IF NOT EXISTS images (
  id          TEXT PRIMARY KEY CHECK (length(id) = 64),
  format      TEXT NOT NULL,
  width       INTEGER NOT NULL,
  height      INTEGER NOT NULL,
  bytes       INTEGER NOT NULL,
  group_key   TEXT,
  created_at  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS image_data (
  id    TEXT PRIMARY KEY REFERENCES images(id) ON DELETE CASCADE,
  data  BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS image_urls (
  url         TEXT PRIMARY KEY,
  image_id    TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
  fetched_at  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS ratings (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  image_id    TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
  rater       TEXT NOT NULL,
  rating      INTEGER CHECK (rating BETWEEN ${RATING_MIN} AND ${RATING_MAX}),
  histogram   TEXT,
  created_at  TEXT NOT NULL,
  CHECK ((rating IS NULL) <> (histogram IS NULL)),
  UNIQUE (image_id, rater)
);
CREATE INDEX IF NOT EXISTS ratings_rater ON ratings(rater);
CREATE INDEX IF NOT EXISTS image_urls_image ON image_urls(image_id);
`

export interface LabelImage {
  /** sha256 of the bytes. */
  id: string
  format: string
  width: number
  height: number
  bytes: number
  group: string | null
  /** The first URL the image was fetched from, if any. */
  sourceUrl: string | null
  createdAt: string
  /** Ratings of this image, all raters. */
  ratings: number
}

export interface NewImage {
  id: string
  data: Uint8Array
  format: string
  width: number
  height: number
  group?: string | null
  sourceUrl?: string | null
}

export interface Rating {
  id: number
  imageId: string
  rater: string
  rating: number | null
  histogram: number[] | null
  createdAt: string
}

export type NewRating = { imageId: string; rater: string } & ({ rating: number; histogram?: undefined } | { histogram: number[]; rating?: undefined })

export interface Page<T> {
  items: T[]
  /** Cursor for the next page (pass as `after`), null at the end. */
  next: number | null
}

export class LabelStoreError extends Error {
  override name = 'LabelStoreError'
  readonly [kFailureKind] = 'failed' as const
  constructor(
    /** IN_USE: another live process has the database open. */
    readonly code: 'NOT_FOUND' | 'INVALID' | 'LOCKED' | 'SCHEMA' | 'IN_USE',
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options)
  }
}

export interface OpenOptions {
  readOnly?: boolean
  /** Clock for created_at values; tests pass a fixed one. */
  now?: () => Date
  /** Lease and heartbeat of the ownership (owner.ts); tests shorten them. */
  claim?: ClaimOptions
}

function validName(what: string, value: string): void {
  if (!NAME_PATTERN.test(value)) throw new LabelStoreError('INVALID', `${what}: expected 1-64 letters, digits, spaces or . _ @ + -, got ${JSON.stringify(value)}`)
}

export function validateRating(r: { rating?: number | null; histogram?: readonly number[] | null }): void {
  const hasRating = r.rating !== undefined && r.rating !== null
  const hasHistogram = r.histogram !== undefined && r.histogram !== null
  if (hasRating === hasHistogram) throw new LabelStoreError('INVALID', 'send exactly one of rating (an integer 1..10) and histogram (10 vote counts)')
  if (hasRating) {
    const v = r.rating!
    if (!Number.isInteger(v) || v < RATING_MIN || v > RATING_MAX) throw new LabelStoreError('INVALID', `rating: expected an integer from ${RATING_MIN} to ${RATING_MAX}, got ${v}`)
    return
  }
  const h = r.histogram!
  if (h.length !== HISTOGRAM_BINS) throw new LabelStoreError('INVALID', `histogram: expected ${HISTOGRAM_BINS} counts (scores 1..10), got ${h.length}`)
  if (!h.every((c) => Number.isFinite(c) && c >= 0)) throw new LabelStoreError('INVALID', 'histogram: expected counts >= 0')
  if (h.every((c) => c === 0)) throw new LabelStoreError('INVALID', 'histogram: at least one count must be > 0')
}

function toImage(row: Row): LabelImage {
  return {
    id: String(row['id']),
    format: String(row['format']),
    width: Number(row['width']),
    height: Number(row['height']),
    bytes: Number(row['bytes']),
    group: row['group_key'] === null ? null : String(row['group_key']),
    sourceUrl: row['source_url'] === null || row['source_url'] === undefined ? null : String(row['source_url']),
    createdAt: String(row['created_at']),
    ratings: Number(row['ratings'] ?? 0),
  }
}

function toRating(row: Row): Rating {
  return {
    id: Number(row['id']),
    imageId: String(row['image_id']),
    rater: String(row['rater']),
    rating: row['rating'] === null ? null : Number(row['rating']),
    histogram: row['histogram'] === null ? null : (JSON.parse(String(row['histogram'])) as number[]),
    createdAt: String(row['created_at']),
  }
}

const IMAGE_COLUMNS = `i.id, i.format, i.width, i.height, i.bytes, i.group_key, i.created_at,
  (SELECT u.url FROM image_urls u WHERE u.image_id = i.id ORDER BY u.fetched_at, u.url LIMIT 1) AS source_url,
  (SELECT COUNT(*) FROM ratings r WHERE r.image_id = i.id) AS ratings`

/** One connection per database per process, shared by every store opened on it here. */
interface Connection {
  readonly db: Db
  readonly ownership: Ownership | undefined
  refs: number
}
const connections = new Map<string, Promise<Connection>>()

/**
 * The connection: owned by this process (owner.ts), then EXCLUSIVE locking and a WAL.
 * Why a WAL: this driver's lock (a folder) cannot tell its own SHARED lock from another
 * connection's RESERVED one, so it never sees a rollback journal as hot and never rolls
 * back what a killed writer half-wrote. WAL recovery does not ask the lock: on open, SQLite
 * keeps the WAL's frames up to the last whole, checksummed commit and drops the rest.
 * EXCLUSIVE locking lets the WAL index live in the process's memory (the driver has no
 * shared memory), and synchronous=FULL fsyncs the WAL before a commit returns.
 */
async function connect(path: string, memory: boolean, claim: ClaimOptions | undefined): Promise<Connection> {
  let ownership: Ownership | undefined
  try {
    ownership = memory ? undefined : await claimDatabase(path, claim)
  } catch (err) {
    if (err instanceof DatabaseOwnedError) throw new LabelStoreError('IN_USE', err.message, { cause: err })
    throw err
  }
  let db: Db
  try {
    db = new Database(path)
  } catch (cause) {
    ownership?.release()
    throw new LabelStoreError('SCHEMA', `cannot open label database ${path}: ${(cause as Error).message}`, { cause })
  }
  try {
    db.exec('PRAGMA locking_mode = EXCLUSIVE')
    if (!memory && String((db.get('PRAGMA journal_mode = WAL') as Row)['journal_mode']) !== 'wal') throw new Error('the WAL journal mode could not be set')
    db.exec('PRAGMA synchronous = FULL')
    db.exec('PRAGMA foreign_keys = ON')
  } catch (err) {
    db.close()
    ownership?.release()
    throw new LabelStoreError('SCHEMA', `${path} is not a label database: ${(err as Error).message}`, { cause: err })
  }
  return { db, ownership, refs: 0 }
}

export class LabelStore {
  readonly path: string
  /** What a dead previous owner left and opening this store cleaned up, for the log; undefined when nothing. */
  readonly recovered: string | undefined
  readonly #db: Db
  readonly #now: () => Date
  readonly #readOnly: boolean
  #release: (() => void) | undefined

  private constructor(path: string, db: Db, now: () => Date, readOnly: boolean, recovered: string | undefined, release: () => void) {
    this.path = path
    this.#db = db
    this.#now = now
    this.#readOnly = readOnly
    this.recovered = recovered
    this.#release = release
  }

  /**
   * Opens (creating it and its folder unless `readOnly`) the database at `path`, owned by
   * this process until the last store open on it here is closed; IN_USE when another live
   * process owns it.
   */
  static async open(path: string, options: OpenOptions = {}): Promise<LabelStore> {
    const memory = path === ':memory:' || path === ''
    const readOnly = Boolean(options.readOnly)
    if (!memory) {
      if (readOnly && !existsSync(path)) throw new LabelStoreError('SCHEMA', `cannot open label database ${path}: no such file`)
      if (!readOnly) mkdirSync(dirname(path), { recursive: true })
    }
    const key = memory ? undefined : resolve(path)
    let pending = key === undefined ? undefined : connections.get(key)
    const first = pending === undefined
    if (!pending) {
      pending = connect(path, memory, options.claim)
      if (key !== undefined) {
        connections.set(key, pending)
        pending.catch(() => connections.delete(key))
      }
    }
    const connection = await pending
    connection.refs++
    const release = () => {
      if (--connection.refs > 0) return
      if (key !== undefined) connections.delete(key)
      connection.db.close()
      connection.ownership?.release()
    }
    const store = new LabelStore(path, connection.db, options.now ?? (() => new Date()), readOnly, first ? connection.ownership?.recovered : undefined, release)
    try {
      store.#migrate(readOnly)
    } catch (err) {
      store.close()
      if (err instanceof LabelStoreError) throw err
      throw new LabelStoreError('SCHEMA', `${path} is not a label database: ${(err as Error).message}`, { cause: err })
    }
    return store
  }

  #migrate(readOnly: boolean): void {
    this.#guard(() => {
      // Wait (blocking, briefly) for a lock instead of failing at once.
      this.#db.exec(`PRAGMA busy_timeout = ${BUSY_TIMEOUT_MS}`)
      const version = Number((this.#db.get('PRAGMA user_version') as Row)['user_version'])
      if (version > SCHEMA_VERSION) throw new LabelStoreError('SCHEMA', `${this.path} has schema version ${version}; this nima-serve knows up to ${SCHEMA_VERSION}`)
      if (version === SCHEMA_VERSION) return
      if (readOnly) throw new LabelStoreError('SCHEMA', `${this.path} is not a label database (schema version ${version})`)
      this.#transaction(() => {
        this.#db.exec(SCHEMA)
        this.#db.exec(`PRAGMA user_version = ${SCHEMA_VERSION}`)
      })
    })
  }

  /** Stores opened read-only never write, though they may share this process's connection with one that does. */
  #writable(): void {
    if (this.#readOnly) throw new LabelStoreError('INVALID', `label database ${this.path} was opened read-only`)
  }

  /** Maps the driver's "database is locked" onto a clear error. */
  #guard<T>(fn: () => T): T {
    try {
      return fn()
    } catch (err) {
      if (err instanceof LabelStoreError) throw err
      const message = err instanceof Error ? err.message : String(err)
      if (/locked|busy/i.test(message)) {
        throw new LabelStoreError('LOCKED', `label database ${this.path} is locked (${message})`, { cause: err })
      }
      throw err
    }
  }

  #transaction<T>(fn: () => T): T {
    this.#db.exec('BEGIN IMMEDIATE')
    try {
      const result = fn()
      this.#db.exec('COMMIT')
      return result
    } catch (err) {
      if (this.#db.inTransaction) this.#db.exec('ROLLBACK')
      throw err
    }
  }

  /** Closes this store; the connection and the ownership go with the last store open on the database here. */
  close(): void {
    const release = this.#release
    this.#release = undefined
    release?.()
  }

  /** Stores an image unless its bytes are already there; remembers the URL it came from. */
  addImage(image: NewImage): { image: LabelImage; created: boolean } {
    this.#writable()
    if (!/^[0-9a-f]{64}$/.test(image.id)) throw new LabelStoreError('INVALID', `image id: expected a sha256 hex digest, got ${JSON.stringify(image.id)}`)
    if (image.group !== undefined && image.group !== null) validName('group', image.group)
    const now = this.#now().toISOString()
    const created = this.#guard(() =>
      this.#transaction(() => {
        const exists = this.#db.get('SELECT 1 AS x FROM images WHERE id = ?', [image.id]) !== null
        if (!exists) {
          this.#db.run('INSERT INTO images (id, format, width, height, bytes, group_key, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)', [
            image.id,
            image.format,
            image.width,
            image.height,
            image.data.byteLength,
            image.group ?? null,
            now,
          ])
          this.#db.run('INSERT INTO image_data (id, data) VALUES (?, ?)', [image.id, image.data])
        } else if (image.group) {
          this.#db.run('UPDATE images SET group_key = ? WHERE id = ? AND group_key IS NULL', [image.group, image.id])
        }
        if (image.sourceUrl) this.#db.run('INSERT OR IGNORE INTO image_urls (url, image_id, fetched_at) VALUES (?, ?, ?)', [image.sourceUrl, image.id, now])
        return !exists
      }),
    )
    return { image: this.getImage(image.id)!, created }
  }

  /** The image already fetched from this exact URL, so a URL is fetched only once. */
  imageByUrl(url: string): LabelImage | undefined {
    const row = this.#guard(() => this.#db.get(`SELECT ${IMAGE_COLUMNS} FROM image_urls u0 JOIN images i ON i.id = u0.image_id WHERE u0.url = ?`, [url]))
    return row ? toImage(row as Row) : undefined
  }

  getImage(id: string): LabelImage | undefined {
    const row = this.#guard(() => this.#db.get(`SELECT ${IMAGE_COLUMNS} FROM images i WHERE i.id = ?`, [id]))
    return row ? toImage(row as Row) : undefined
  }

  imageData(id: string): Uint8Array | undefined {
    const row = this.#guard(() => this.#db.get('SELECT data FROM image_data WHERE id = ?', [id])) as Row | null
    return row ? (row['data'] as Uint8Array) : undefined
  }

  countImages(): number {
    return Number((this.#guard(() => this.#db.get('SELECT COUNT(*) AS n FROM images')) as Row)['n'])
  }

  /** Images in insertion order, `limit` at a time; `after` is the previous page's cursor. */
  listImages(options: { after?: number; limit: number }): Page<LabelImage> {
    const rows = this.#guard(() =>
      this.#db.all(`SELECT i.rowid AS seq, ${IMAGE_COLUMNS} FROM images i WHERE i.rowid > ? ORDER BY i.rowid LIMIT ?`, [options.after ?? 0, options.limit + 1]),
    ) as Row[]
    const items = rows.slice(0, options.limit)
    return { items: items.map(toImage), next: rows.length > options.limit ? Number(items[items.length - 1]!['seq']) : null }
  }

  /**
   * An image this rater has not rated: the least-rated first (so coverage grows evenly and
   * several raters meet on the same images for agreement), then the oldest. `skip` lists
   * images the rater passed over in this session.
   */
  nextImage(rater: string, skip: readonly string[] = []): { image: LabelImage | undefined; remaining: number } {
    validName('rater', rater)
    const notRated = 'NOT EXISTS (SELECT 1 FROM ratings r WHERE r.image_id = i.id AND r.rater = ?)'
    const skipSql = skip.length > 0 ? ` AND i.id NOT IN (${skip.map(() => '?').join(', ')})` : ''
    return this.#guard(() => {
      const remaining = Number((this.#db.get(`SELECT COUNT(*) AS n FROM images i WHERE ${notRated}`, [rater]) as Row)['n'])
      const row = this.#db.get(`SELECT ${IMAGE_COLUMNS} FROM images i WHERE ${notRated}${skipSql} ORDER BY ratings, i.rowid LIMIT 1`, [rater, ...skip])
      return { image: row ? toImage(row as Row) : undefined, remaining }
    })
  }

  /** Adds a rating, or replaces this rater's earlier rating of the image. */
  rate(input: NewRating): { rating: Rating; created: boolean } {
    this.#writable()
    validName('rater', input.rater)
    validateRating(input)
    const now = this.#now().toISOString()
    return this.#guard(() =>
      this.#transaction(() => {
        if (this.#db.get('SELECT 1 AS x FROM images WHERE id = ?', [input.imageId]) === null) {
          throw new LabelStoreError('NOT_FOUND', `no image ${input.imageId} in the label database`)
        }
        const previous = this.#db.get('SELECT id FROM ratings WHERE image_id = ? AND rater = ?', [input.imageId, input.rater]) as Row | null
        const values = [input.rating ?? null, input.histogram ? JSON.stringify(input.histogram) : null, now]
        let id: number
        if (previous) {
          id = Number(previous['id'])
          this.#db.run('UPDATE ratings SET rating = ?, histogram = ?, created_at = ? WHERE id = ?', [...values, id])
        } else {
          id = Number(this.#db.run('INSERT INTO ratings (rating, histogram, created_at, image_id, rater) VALUES (?, ?, ?, ?, ?)', [...values, input.imageId, input.rater]).lastInsertRowid)
        }
        return { rating: toRating(this.#db.get('SELECT * FROM ratings WHERE id = ?', [id]) as Row), created: previous === null }
      }),
    )
  }

  getRating(id: number): Rating | undefined {
    const row = this.#guard(() => this.#db.get('SELECT * FROM ratings WHERE id = ?', [id]))
    return row ? toRating(row as Row) : undefined
  }

  deleteRating(id: number): boolean {
    this.#writable()
    return this.#guard(() => this.#db.run('DELETE FROM ratings WHERE id = ?', [id]).changes > 0)
  }

  /** Ratings in id order, optionally of one rater or one image. */
  listRatings(options: { after?: number; limit: number; rater?: string; imageId?: string }): Page<Rating> {
    const where = ['id > ?']
    const params: (string | number)[] = [options.after ?? 0]
    if (options.rater !== undefined) {
      where.push('rater = ?')
      params.push(options.rater)
    }
    if (options.imageId !== undefined) {
      where.push('image_id = ?')
      params.push(options.imageId)
    }
    const rows = this.#guard(() => this.#db.all(`SELECT * FROM ratings WHERE ${where.join(' AND ')} ORDER BY id LIMIT ?`, [...params, options.limit + 1])) as Row[]
    const items = rows.slice(0, options.limit).map(toRating)
    return { items, next: rows.length > options.limit ? items[items.length - 1]!.id : null }
  }

  /** Every rating joined with its image's group and first URL, for export and training. */
  *exportRows(): Generator<Rating & { group: string | null; sourceUrl: string | null; format: string }> {
    const page = 500
    let after = 0
    for (;;) {
      const rows = this.#guard(() =>
        this.#db.all(
          `SELECT r.*, i.group_key, i.format,
             (SELECT u.url FROM image_urls u WHERE u.image_id = i.id ORDER BY u.fetched_at, u.url LIMIT 1) AS source_url
           FROM ratings r JOIN images i ON i.id = r.image_id WHERE r.id > ? ORDER BY r.id LIMIT ?`,
          [after, page],
        ),
      ) as Row[]
      for (const row of rows) {
        yield {
          ...toRating(row),
          group: row['group_key'] === null ? null : String(row['group_key']),
          sourceUrl: row['source_url'] === null ? null : String(row['source_url']),
          format: String(row['format']),
        }
      }
      if (rows.length < page) return
      after = Number(rows[rows.length - 1]!['id'])
    }
  }

  summary(): LabelSummary {
    const rows = this.#guard(() => this.#db.all('SELECT image_id, rater, rating, histogram FROM ratings ORDER BY id')) as Row[]
    const ratingRows: RatingRow[] = rows.map((r) => ({
      imageId: String(r['image_id']),
      rater: String(r['rater']),
      rating: r['rating'] === null ? null : Number(r['rating']),
      histogram: r['histogram'] === null ? null : (JSON.parse(String(r['histogram'])) as number[]),
    }))
    return summarizeLabels(this.countImages(), ratingRows)
  }
}
