/**
 * The service's score cache: the entries of score-key.ts in an in-process LRU bounded in
 * bytes, in front of an optional shared Redis. A read looks in memory first, asks Redis
 * (one MGET, bounded by its timeout) only for what memory lacked, and keeps what Redis
 * had in memory. A write goes to both; requests never wait for Redis's side of it.
 *
 * Nothing here throws into a request: an unparsable or foreign value reads as missing, and
 * Redis's failures are bypasses (redis-store.ts).
 */
import type { Preprocess } from '../imaging/preprocess.js'
import type { MemoryLru } from './memory-lru.js'
import type { BypassReason, RedisStore } from './redis-store.js'
import { SPAN, traced } from '../util/tracing.js'
import type { ScoreStore, StoredImage } from './score-store.js'
import {
  imageKey,
  imageValue,
  isImageInfo,
  isScore,
  isUrlRecord,
  scoreKey,
  scoreValue,
  urlKey,
  type CachedImageInfo,
  type CachedScore,
  type ModelIdentity,
  type UrlRecord,
} from './score-key.js'

export type CacheLayer = 'memory' | 'redis'

/** How URL inputs went: fresh (within max-age, no request), a 304, a changed body, or a revalidation that failed. */
export type RevalidationOutcome = 'fresh' | 'not_modified' | 'modified' | 'failed'

/**
 * What the cache reports as it works, as plain events (the service turns them into
 * metrics: metrics.ts `cacheObserver`). Hits and misses count entries (one per image and
 * model, one per image's info, one per URL record).
 */
export interface CacheObserver {
  lookup?(layer: CacheLayer, hits: number, misses: number): void
  bypass?(reason: BypassReason): void
  /** A URL input answered from its record: how, and the body bytes not downloaded. */
  revalidated?(outcome: RevalidationOutcome, bytesSaved: number): void
}

export type CachedImage = StoredImage<CacheLayer>

export class TieredScoreCache implements ScoreStore<CacheLayer> {
  readonly memory: MemoryLru | undefined
  readonly redis: RedisStore | undefined
  readonly observer: CacheObserver

  constructor(layers: { memory?: MemoryLru | undefined; redis?: RedisStore | undefined }, observer: CacheObserver = {}) {
    this.memory = layers.memory
    this.redis = layers.redis
    this.observer = observer
  }

  /** The image's info and its scores for `models`. */
  async lookup(imageSha: string, preprocess: Preprocess, models: readonly ModelIdentity[]): Promise<CachedImage> {
    const keys = [imageKey(imageSha, preprocess), ...models.map((m) => scoreKey(imageSha, preprocess, m))]
    const { values, layer } = await this.#getMany(keys)
    const [info, ...scores] = values.map((v) => parse(v))
    return {
      image: isImageInfo(info) ? imageValue(info) : undefined,
      scores: scores.map((s) => (isScore(s) ? scoreValue(s) : undefined)),
      layer,
    }
  }

  /** Stores an image's info and the scores just computed. */
  store(imageSha: string, preprocess: Preprocess, image: CachedImageInfo, scores: ReadonlyArray<readonly [ModelIdentity, CachedScore]>): void {
    this.#setMany([
      [imageKey(imageSha, preprocess), JSON.stringify(imageValue(image))],
      ...scores.map(([m, s]) => [scoreKey(imageSha, preprocess, m), JSON.stringify(scoreValue(s))] as const),
    ])
  }

  async getUrl(url: string): Promise<UrlRecord | undefined> {
    const { values } = await this.#getMany([urlKey(url)])
    const record = parse(values[0])
    return isUrlRecord(record) ? record : undefined
  }

  putUrl(url: string, record: UrlRecord): void {
    this.#setMany([[urlKey(url), JSON.stringify(record)]])
  }

  /** The upstream said no-store: whatever was remembered of the URL goes. */
  forgetUrl(url: string): void {
    const key = urlKey(url)
    this.memory?.delete(key)
    void this.redis?.delete([key])
  }

  async close(): Promise<void> {
    await this.redis?.close()
  }

  /** Every read goes through here, so one `cache lookup` span per read says which layer answered what. */
  #getMany(keys: readonly string[]): Promise<{ values: (string | undefined)[]; layer: CacheLayer | undefined }> {
    return traced(SPAN.cacheLookup, { 'nima.cache.keys': keys.length }, async (span) => {
      const got = await this.#read(keys)
      span?.setAttributes({ 'nima.cache.hits': got.values.filter((v) => v !== undefined).length, 'nima.cache.layer': got.layer ?? 'none' })
      return got
    })
  }

  async #read(keys: readonly string[]): Promise<{ values: (string | undefined)[]; layer: CacheLayer | undefined }> {
    const values: (string | undefined)[] = keys.map((k) => this.memory?.get(k))
    let layer: CacheLayer | undefined
    const missing = values.flatMap((v, i) => (v === undefined ? [i] : []))
    if (this.memory) {
      this.observer.lookup?.('memory', keys.length - missing.length, missing.length)
      if (missing.length < keys.length) layer = 'memory'
    }
    if (this.redis && missing.length > 0) {
      const found = await this.redis.getMany(missing.map((i) => keys[i]!))
      if (found) {
        let hits = 0
        found.forEach((v, j) => {
          if (v === undefined) return
          const i = missing[j]!
          values[i] = v
          this.memory?.set(keys[i]!, v)
          hits += 1
        })
        this.observer.lookup?.('redis', hits, found.length - hits)
        if (hits > 0) layer = 'redis'
      }
    }
    return { values, layer }
  }

  #setMany(entries: ReadonlyArray<readonly [string, string]>): void {
    for (const [k, v] of entries) this.memory?.set(k, v)
    void this.redis?.setMany(entries)
  }
}

function parse(value: string | undefined): unknown {
  if (value === undefined) return undefined
  try {
    return JSON.parse(value)
  } catch {
    return undefined
  }
}
