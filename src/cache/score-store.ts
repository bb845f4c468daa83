/**
 * What the one cache rule ("per model: cached? else run, then store";
 * src/scoring/cached-scoring.ts scoreThroughStore) needs of a score cache. The service's
 * tiered cache (memory + Redis, tiered-cache.ts) and the batch's LMDB file
 * (src/batch/score-cache.ts) implement it, with the entries of score-key.ts.
 */
import type { Preprocess } from '../imaging/preprocess.js'
import type { CachedImageInfo, CachedScore, ModelIdentity } from './score-key.js'

/** An image's entries as found: `L` names the layer that served them. */
export interface StoredImage<L extends string = string> {
  /** The image's info (size, format, perceptual hashes); undefined when missing or from before the hashes. */
  image: CachedImageInfo | undefined
  /** Per requested model, in order; undefined where missing. */
  scores: (CachedScore | undefined)[]
  /** The slowest layer that served something; undefined when nothing was found. */
  layer: L | undefined
}

export interface ScoreStore<L extends string = string> {
  /** The image's info and its scores for `models` under `preprocess`. Never throws: a failing layer reads as missing. */
  lookup(imageSha: string, preprocess: Preprocess, models: readonly ModelIdentity[]): Promise<StoredImage<L>>
  /** Stores an image's info and the scores just computed under `preprocess`. Never throws and is never waited for. */
  store(imageSha: string, preprocess: Preprocess, image: CachedImageInfo, scores: ReadonlyArray<readonly [ModelIdentity, CachedScore]>): void
}
