/**
 * Content-hash score cache on disk (LMDB through the `lmdb` package: one memory-mapped
 * file, crash-safe, several processes on one machine may share it; keep it on a local
 * disk, never on NFS). The batch's ScoreStore (src/cache/score-store.ts): the one cache
 * rule (src/scoring/cached-scoring.ts scoreThroughStore) reads and writes it.
 *
 * Entries and keys are those of src/cache/score-key.ts, shared with the service's cache:
 *   s1/<image sha256>/<model id>@<version>#<model file sha256, 16 hex>  → { mean, std, distribution }
 *   i1/<image sha256>                                                   → { width, height, format, phash, phashCrops }
 *   (both with /fast at the end under PREPROCESS=fast: src/cache/score-key.ts)
 * An i1 entry without a phash or phashCrops (written before they existed) counts as
 * missing, so the image is decoded once more to hash it; scores already cached are kept.
 * Values are MessagePack (float64 numbers), so a cached score is bit-identical to
 * the computed one.
 *
 * lmdb's own entry cache is on: a write is visible to reads at once, before its
 * asynchronous commit, so a duplicate arriving right after its twin hits (without it,
 * it would miss until the commit).
 */
import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { open, type RootDatabase } from 'lmdb'
import { imageKey, imageValue, isImageInfo, isScore, scoreKey, scoreValue, type CachedImageInfo, type ModelIdentity } from '../cache/score-key.js'
import type { ScoreStore, StoredImage } from '../cache/score-store.js'
import type { Preprocess } from '../imaging/preprocess.js'
import type { ScoreSummary } from '../scoring/distribution.js'

export { modelCacheId, type CachedImageInfo, type ModelIdentity } from '../cache/score-key.js'

export interface ScoreCacheStats {
  hits: number
  misses: number
  writes: number
  writeErrors: number
}

export class ScoreCache implements ScoreStore<'lmdb'> {
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
    const db = open<unknown, string>({ path, compression: false, cache: true })
    return new ScoreCache(path, db, onWriteError)
  }

  /** The image's info and its scores for `models`; `stats` counts a hit or miss per score. Memory-mapped reads. */
  async lookup(sha: string, preprocess: Preprocess, models: readonly ModelIdentity[]): Promise<StoredImage<'lmdb'>> {
    const scores = models.map((m) => {
      const v = this.#db.get(scoreKey(sha, preprocess, m))
      if (isScore(v)) {
        this.stats.hits += 1
        return scoreValue(v)
      }
      this.stats.misses += 1
      return undefined
    })
    const image = this.getImage(sha, preprocess)
    return { image, scores, layer: image !== undefined || scores.some((s) => s !== undefined) ? 'lmdb' : undefined }
  }

  getImage(sha: string, preprocess: Preprocess): CachedImageInfo | undefined {
    const v = this.#db.get(imageKey(sha, preprocess))
    return isImageInfo(v) ? imageValue(v) : undefined
  }

  /** Stores an image's info and scores; the write is batched by lmdb and committed asynchronously. */
  store(sha: string, preprocess: Preprocess, image: CachedImageInfo, scores: ReadonlyArray<readonly [ModelIdentity, ScoreSummary]>): void {
    const writes = [this.#db.put(imageKey(sha, preprocess), imageValue(image))]
    for (const [m, s] of scores) writes.push(this.#db.put(scoreKey(sha, preprocess, m), scoreValue(s)))
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
