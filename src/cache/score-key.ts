/**
 * What a score-cache entry is: its key and its value. The one definition shared by the
 * service's cache (memory and Redis, src/cache/result-cache.ts) and the batch CLI's LMDB
 * cache (src/batch/score-cache.ts), so an entry means the same thing wherever it is kept.
 *
 *   s1/<image sha256>/<model id>@<version>#<model file sha256, 16 hex>  → CachedScore
 *   i1/<image sha256>                                                   → CachedImageInfo (phash and phashCrops)
 *   s1/<image sha256>/<model>/fast, i1/<image sha256>/fast              → the same, under PREPROCESS=fast
 *   u1/<sha256 of the URL>                                              → UrlRecord (service only)
 *
 * The image part is the sha256 of the bytes (the `image.id` of a response). The model part
 * changes with the model's version or its weights file, so a new model (or re-generated
 * synthetic weights) misses instead of serving stale scores. A URL is hashed: URLs are
 * unbounded and may carry secrets in their query string, neither of which belongs in a
 * key that operators list. The preprocessing is part of the key, so exact and fast
 * results never mix; exact keeps the keys it always had, so a cache filled before
 * PREPROCESS existed stays valid. Bump the `s1`/`i1`/`u1` prefix when a value's shape changes.
 */
import { createHash } from 'node:crypto'
import { isPhash, isPhashCrops } from '../imaging/phash.js'
import type { Preprocess } from '../imaging/preprocess.js'

/**
 * A model's score as the cache keeps it. Scoring's ScoreSummary (src/scoring/distribution.ts)
 * has these fields, so scores go in and come out without conversion; the cache declares the
 * shape itself because it sits below scoring (it stores what it checks, like CachedImageInfo).
 */
export interface CachedScore {
  mean: number
  std: number
  distribution: number[]
}

/** The model's fingerprint: what must change for a cached score to be stale. */
export interface ModelIdentity {
  id: string
  version: string
  /** sha256 of the model file (from its manifest). */
  sha256: string
}

/** What scoring needs of an image besides its scores: ranking groups near-duplicates by `phash`. */
export interface CachedImageInfo {
  width: number
  height: number
  format: string
  /** src/imaging/phash.ts: 16 hex digits. */
  phash: string
  /** src/imaging/phash.ts cornerHashes: lets one-sided crops group. */
  phashCrops: string[]
}

/** A URL's last answer: which image it was and how to ask the upstream whether it changed. */
export interface UrlRecord {
  /** sha256 of the body. */
  sha256: string
  /** Body size: the upstream bytes a 304 saves. */
  bytes: number
  etag?: string
  lastModified?: string
  /** Epoch ms until which the upstream said the body stays fresh (max-age): no request at all before it. */
  freshUntil?: number
}

/** A model's identity from its manifest. */
export function modelIdentity(model: { manifest: ModelIdentity }): ModelIdentity {
  const { id, version, sha256 } = model.manifest
  return { id, version, sha256 }
}

export function modelCacheId(m: ModelIdentity): string {
  return `${m.id}@${m.version}#${m.sha256.slice(0, 16)}`
}

const preprocessSuffix = (p: Preprocess): string => (p === 'exact' ? '' : `/${p}`)
export const scoreKey = (imageSha: string, preprocess: Preprocess, model: ModelIdentity): string => `s1/${imageSha}/${modelCacheId(model)}${preprocessSuffix(preprocess)}`
export const imageKey = (imageSha: string, preprocess: Preprocess): string => `i1/${imageSha}${preprocessSuffix(preprocess)}`
export const urlKey = (url: string): string => `u1/${createHash('sha256').update(url).digest('hex')}`

export function isScore(v: unknown): v is CachedScore {
  const s = v as Partial<CachedScore> | undefined
  return typeof s?.mean === 'number' && typeof s.std === 'number' && Array.isArray(s.distribution) && s.distribution.every((x) => typeof x === 'number')
}

export function isImageInfo(v: unknown): v is CachedImageInfo {
  const i = v as Partial<CachedImageInfo> | undefined
  return typeof i?.width === 'number' && typeof i.height === 'number' && typeof i.format === 'string' && isPhash(i.phash) && isPhashCrops(i.phashCrops)
}

export function isUrlRecord(v: unknown): v is UrlRecord {
  const r = v as Partial<UrlRecord> | undefined
  return (
    typeof r?.sha256 === 'string' &&
    /^[0-9a-f]{64}$/.test(r.sha256) &&
    typeof r.bytes === 'number' &&
    (r.etag === undefined || typeof r.etag === 'string') &&
    (r.lastModified === undefined || typeof r.lastModified === 'string') &&
    (r.freshUntil === undefined || typeof r.freshUntil === 'number')
  )
}

/** The stored form of a score: exactly its three fields (a ScoreSummary may carry more at runtime). */
export const scoreValue = (s: CachedScore): CachedScore => ({ mean: s.mean, std: s.std, distribution: s.distribution })
export const imageValue = (i: CachedImageInfo): CachedImageInfo => ({ width: i.width, height: i.height, format: i.format, phash: i.phash, phashCrops: i.phashCrops })
