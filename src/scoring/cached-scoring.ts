/**
 * Scoring through a score cache: the one rule, `scoreThroughStore` (any ScoreStore: the
 * service's memory + Redis, the batch's LMDB), and the service's per-request session
 * around it. The cache sits in front of decode and inference, per model. What a cached
 * result skips is exactly those two; everything after (the combined score with this
 * request's weights, ranking, byte-identical and near-duplicate folding, from the cached
 * perceptual hash) runs as for a fresh one.
 *
 * For an image's bytes: sha256 → the image's info and each model's score from the cache;
 * the models missing are the only ones run (after a decode), and their scores are stored.
 *
 * For a URL: its record (sha256, ETag, Last-Modified, freshness) from the cache.
 * - Within the upstream's max-age, and every score cached: no request at all ('fresh').
 * - Else, when every score is cached, a conditional GET: a 304 serves the cached scores
 *   without the body being downloaded or decoded ('not-modified'); a 200 is a changed
 *   photo, scored like any new bytes.
 * - Else a plain GET. Each answer's validators are remembered, unless it says no-store.
 * Every request goes through the image source, so through the host queue and the SSRF
 * checks, revalidations included.
 *
 * Within the request, each URL is fetched once and each distinct image scored once.
 */
import { cachePolicy } from '../fetching/cache-policy.js'
import type { ImageSource, SourcedImage } from '../fetching/image-source.js'
import type { CachingHeaders } from '../fetching/fetch-image.js'
import { imageId } from '../imaging/decode.js'
import { modelIdentity, type CachedImageInfo, type UrlRecord } from '../cache/score-key.js'
import type { ScoreStore, StoredImage } from '../cache/score-store.js'
import type { TieredScoreCache } from '../cache/tiered-cache.js'
import type { Weights } from './combined.js'
import type { NimaModel } from './nima-model.js'
import type { ImageScore, Scorer } from './scorer.js'

/** What served an image's scores: computed now ('miss'), or a cache layer; 'off' when SCORE_CACHE=off. */
export type ResultSource = 'off' | 'miss' | 'memory' | 'redis'
/** URL inputs with the cache on: the body was downloaded, or the upstream said 304, or max-age spared the request. */
export type UpstreamOutcome = 'downloaded' | 'not-modified' | 'fresh'

export interface CacheReport {
  result: ResultSource
  upstream?: UpstreamOutcome
}

export interface Served {
  score: ImageScore
  cache: CacheReport
  /** URL inputs: time spent fetching or revalidating (absent when no request was made). */
  fetchMs?: number
}

export interface ScoringSessionOptions {
  scorer: Scorer
  /** Undefined: SCORE_CACHE=off, every image decoded and inferred. */
  cache: TieredScoreCache | undefined
  images: ImageSource
  models: readonly NimaModel[]
  weights?: Weights | undefined
  signal?: AbortSignal | undefined
  /** Hears each failed fetch (the routes count a client gone during a fetch as abandoned there). */
  onFetchError?: (err: unknown) => void
}

/** What `scoreThroughStore` served: the scores, and where they came from. */
export interface StoreScored<L extends string> {
  score: ImageScore
  /** The store's layer when it had everything (info and every model's score); undefined: something was computed. */
  layer: L | undefined
  /** True when a model ran; false when every score came from the store (the image may still have been decoded for its info). */
  inferred: boolean
}

/**
 * The one cache rule: per model, cached? else run, then store. The image's info and each
 * model's score are looked up; only the models missing run (after the scorer's admission
 * and decode), and what they computed is stored. Every score cached but not the image's
 * info (evicted apart, or from before the perceptual hashes): decoded for it, no inference.
 */
export async function scoreThroughStore<L extends string>(
  store: ScoreStore<L>,
  scorer: Scorer,
  bytes: Buffer,
  sha: string,
  models: readonly NimaModel[],
  options: { weights?: Weights | undefined; signal?: AbortSignal | undefined } = {},
): Promise<StoreScored<L>> {
  const { weights, signal } = options
  // The scorer's preprocessing is part of every key: exact and fast results never mix.
  const preprocess = scorer.preprocess
  const found = await store.lookup(sha, preprocess, models.map(modelIdentity))
  if (complete(found)) return { score: fromStore(scorer, sha, bytes.length, models, found, weights), layer: found.layer, inferred: false }
  const missing = models.filter((_, i) => found.scores[i] === undefined)
  const fresh = missing.length > 0 ? await scorer.scoreBytes(bytes, missing, weights, signal) : undefined
  const image = fresh?.image ?? (await scorer.inspect(bytes, signal))
  const scores = models.map((m, i) => found.scores[i] ?? fresh!.scores[m.info.id]!)
  store.store(
    sha,
    preprocess,
    image,
    missing.map((m) => [modelIdentity(m), fresh!.scores[m.info.id]!] as const),
  )
  const timings = fresh?.timings ?? { decodeMs: 0, inferenceMs: 0 }
  return { score: scorer.result(image, models, scores, weights, timings), layer: undefined, inferred: fresh !== undefined }
}

/** An image's result from the store alone (info and every score found). */
function fromStore(scorer: Scorer, sha: string, bytes: number, models: readonly NimaModel[], found: StoredImage, weights: Weights | undefined): ImageScore {
  const info: CachedImageInfo = found.image!
  const image = { id: sha, width: info.width, height: info.height, format: info.format, bytes, preprocess: scorer.preprocess, phash: info.phash, phashCrops: info.phashCrops }
  return scorer.result(image, models, found.scores as NonNullable<(typeof found.scores)[number]>[], weights, { decodeMs: 0, inferenceMs: 0 })
}

export class ScoringSession {
  readonly #o: ScoringSessionOptions
  readonly #identities
  readonly #byUrl = new Map<string, Promise<Served>>()
  readonly #bySha = new Map<string, Promise<Served>>()
  readonly #served = new Set<string>()

  constructor(options: ScoringSessionOptions) {
    this.#o = options
    this.#identities = options.models.map(modelIdentity)
  }

  /** Scores for these bytes (an upload, or a URL's body). */
  bytes(bytes: Buffer): Promise<Served> {
    const sha = imageId(bytes)
    let served = this.#bySha.get(sha)
    if (!served) this.#bySha.set(sha, (served = this.#scoreBytes(bytes, sha).then((s) => this.#serve(s))))
    return served
  }

  /** Scores for the image behind `url`. */
  url(url: string): Promise<Served> {
    let served = this.#byUrl.get(url)
    if (!served) this.#byUrl.set(url, (served = this.#scoreUrl(url).then((s) => this.#serve(s))))
    return served
  }

  /** Reports each distinct image's scores once per session, however many inputs led to it. */
  #serve(served: Served): Served {
    const id = served.score.image.id
    if (!this.#served.has(id)) {
      this.#served.add(id)
      this.#o.scorer.served(served.score)
    }
    return served
  }

  async #scoreBytes(bytes: Buffer, sha: string): Promise<Served> {
    const { scorer, cache, models, weights, signal } = this.#o
    if (!cache) return { score: await scorer.scoreBytes(bytes, models, weights, signal), cache: { result: 'off' } }
    const served = await scoreThroughStore(cache, scorer, bytes, sha, models, { weights, signal })
    return { score: served.score, cache: { result: served.layer ?? 'miss' } }
  }

  async #scoreUrl(url: string): Promise<Served> {
    const { cache, images, signal } = this.#o
    if (!cache) {
      const got = await this.#fetched(images.fetch(url, signal))
      return { ...(await this.bytes(got.bytes)), fetchMs: got.fetchMs }
    }
    const record = await cache.getUrl(url)
    if (record) {
      const found = await cache.lookup(record.sha256, this.#o.scorer.preprocess, this.#identities)
      if (complete(found)) {
        const served = { score: fromStore(this.#o.scorer, record.sha256, record.bytes, this.#o.models, found, this.#o.weights), cache: { result: found.layer! } }
        if (record.freshUntil !== undefined && record.freshUntil > Date.now()) {
          cache.observer.revalidated?.('fresh', record.bytes)
          return { ...served, cache: { ...served.cache, upstream: 'fresh' } }
        }
        if (record.etag !== undefined || record.lastModified !== undefined) {
          const validators = { ...(record.etag !== undefined ? { etag: record.etag } : {}), ...(record.lastModified !== undefined ? { lastModified: record.lastModified } : {}) }
          const got = await this.#fetched(images.revalidate(url, validators, signal)).catch((err: unknown) => {
            cache.observer.revalidated?.('failed', 0)
            throw err
          })
          if ('notModified' in got) {
            cache.observer.revalidated?.('not_modified', record.bytes)
            this.#remember(url, { ...record, ...validatorsOf(got.caching, record) }, got.caching)
            return { ...served, cache: { ...served.cache, upstream: 'not-modified' }, fetchMs: got.fetchMs }
          }
          cache.observer.revalidated?.('modified', 0)
          return this.#downloaded(url, got)
        }
      }
    }
    return this.#downloaded(url, await this.#fetched(images.fetch(url, signal)))
  }

  async #downloaded(url: string, got: SourcedImage): Promise<Served> {
    const served = await this.bytes(got.bytes)
    this.#remember(url, { sha256: served.score.image.id, bytes: got.bytes.length, ...validatorsOf(got.caching) }, got.caching)
    return { ...served, cache: { ...served.cache, upstream: 'downloaded' }, fetchMs: got.fetchMs }
  }

  /** Remembers (or forgets) the URL as the upstream's Cache-Control allows. */
  #remember(url: string, record: UrlRecord, caching: CachingHeaders): void {
    const cache = this.#o.cache!
    const policy = cachePolicy(caching)
    const { freshUntil: _old, ...rest } = record
    const next: UrlRecord = { ...rest, ...(policy.freshForMs > 0 ? { freshUntil: Date.now() + policy.freshForMs } : {}) }
    if (policy.noStore || (next.etag === undefined && next.lastModified === undefined && next.freshUntil === undefined)) cache.forgetUrl(url)
    else cache.putUrl(url, next)
  }

  #fetched<T>(fetch: Promise<T>): Promise<T> {
    return fetch.catch((err: unknown) => {
      this.#o.onFetchError?.(err)
      throw err
    })
  }

}

function complete(found: StoredImage): boolean {
  return found.image !== undefined && found.layer !== undefined && found.scores.every((s) => s !== undefined)
}

/** The validators of an answer; a 304 may leave them out, and then the ones it confirmed stay. */
function validatorsOf(caching: CachingHeaders, previous: Partial<UrlRecord> = {}): Pick<UrlRecord, 'etag' | 'lastModified'> {
  const etag = caching.etag ?? previous.etag
  const lastModified = caching.lastModified ?? previous.lastModified
  return { ...(etag !== undefined ? { etag } : {}), ...(lastModified !== undefined ? { lastModified } : {}) }
}
