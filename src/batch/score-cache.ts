/**
 * Content-hash score cache on disk (LMDB through the `lmdb` package: one memory-mapped
 * file, crash-safe, several processes on one machine may share it; keep it on a local
 * disk, never on NFS).
 *
 * Entries:
 *   s1/<image sha256>/<model id>@<version>#<model file sha256, 16 hex>  → { mean, std, distribution }
 *   i1/<image sha256>                                                   → { width, height, format, phash, phashCrops }
 * An i1 entry without a phash or phashCrops (written before they existed) counts as
 * missing, so the image is decoded once more to hash it; scores already cached are kept.
 * The model part of the key changes with the model's version or its weights file, so a
 * new model (or re-generated synthetic weights) misses the cache instead of serving stale
 * scores. Values are MessagePack (float64 numbers), so a cached score is bit-identical to
 * the computed one.
 */
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { open, type RootDatabase } from 'lmdb'
import { isPhash, isPhashCrops } from '../imaging/phash.js'
import type { ScoreSummary } from '../scoring/distribution.js'

export interface ModelIdentity {
  id: string
  version: string
  /** sha256 of the model file (from its manifest). */
  sha256: string
}

export interface CachedImageInfo {
  width: number
  height: number
  format: string
  /** src/imaging/phash.ts: rank-hotels groups near-duplicates by it. */
  phash: string
  /** src/imaging/phash.ts cornerHashes: lets one-sided crops group. */
  phashCrops: string[]
}

export function modelCacheId(m: ModelIdentity): string {
  return `${m.id}@${m.version}#${m.sha256.slice(0, 16)}`
}

const scoreKey = (sha: string, model: ModelIdentity): string => `s1/${sha}/${modelCacheId(model)}`
const imageKey = (sha: string): string => `i1/${sha}`

function isScore(v: unknown): v is ScoreSummary {
  const s = v as Partial<ScoreSummary> | undefined
  return typeof s?.mean === 'number' && typeof s.std === 'number' && Array.isArray(s.distribution) && s.distribution.every((x) => typeof x === 'number')
}

function isImageInfo(v: unknown): v is CachedImageInfo {
  const i = v as Partial<CachedImageInfo> | undefined
  return typeof i?.width === 'number' && typeof i.height === 'number' && typeof i.format === 'string' && isPhash(i.phash) && isPhashCrops(i.phashCrops)
}

export interface ScoreCacheStats {
  hits: number
  misses: number
  writes: number
  writeErrors: number
}

export class ScoreCache {
  readonly path: string
  readonly stats: ScoreCacheStats = { hits: 0, misses: 0, writes: 0, writeErrors: 0 }
  readonly #db: RootDatabase<unknown, string>
  readonly #onWriteError: (err: unknown) => void

  private constructor(path: string, db: RootDatabase<unknown, string>, onWriteError: (err: unknown) => void) {
    this.path = path
    this.#db = db
    this.#onWriteError = onWriteError
  }

  /** Opens (creating) the cache in `dir`. `onWriteError` hears about failed writes; they are never fatal. */
  static async open(dir: string, onWriteError: (err: unknown) => void = () => {}): Promise<ScoreCache> {
    await mkdir(dir, { recursive: true })
    const path = join(dir, 'scores.lmdb')
    const db = open<unknown, string>({ path, compression: false })
    return new ScoreCache(path, db, onWriteError)
  }

  /** The cached scores of `sha` for each model, `undefined` where missing. Synchronous (memory-mapped read). */
  getScores(sha: string, models: readonly ModelIdentity[]): (ScoreSummary | undefined)[] {
    return models.map((m) => {
      const v = this.#db.get(scoreKey(sha, m))
      if (isScore(v)) {
        this.stats.hits += 1
        return v
      }
      this.stats.misses += 1
      return undefined
    })
  }

  getImage(sha: string): CachedImageInfo | undefined {
    const v = this.#db.get(imageKey(sha))
    return isImageInfo(v) ? v : undefined
  }

  /** Stores an image's info and scores; the write is batched by lmdb and committed asynchronously. */
  put(sha: string, image: CachedImageInfo, scores: ReadonlyArray<readonly [ModelIdentity, ScoreSummary]>): void {
    const writes = [this.#db.put(imageKey(sha), { width: image.width, height: image.height, format: image.format, phash: image.phash, phashCrops: image.phashCrops })]
    for (const [m, s] of scores) writes.push(this.#db.put(scoreKey(sha, m), { mean: s.mean, std: s.std, distribution: s.distribution }))
    for (const w of writes) {
      w.then(
        () => {
          this.stats.writes += 1
        },
        (err: unknown) => {
          this.stats.writeErrors += 1
          this.#onWriteError(err)
        },
      )
    }
  }

  /** Waits for pending writes to reach the disk, then closes. */
  async close(): Promise<void> {
    try {
      await this.#db.flushed
    } finally {
      await this.#db.close()
    }
  }
}
