import { createHash } from 'node:crypto'

/** One of `count` shards, 0-based like Kubernetes' JOB_COMPLETION_INDEX. */
export interface Shard {
  index: number
  count: number
}

export const MAX_SHARDS = 1_000_000

/** Parses `i/n` (0 ≤ i < n); throws a RangeError naming what was expected. */
export function parseShard(text: string): Shard {
  const m = /^(\d{1,7})\/(\d{1,7})$/.exec(text.trim())
  const index = m ? Number(m[1]) : NaN
  const count = m ? Number(m[2]) : NaN
  if (!m || count < 1 || count > MAX_SHARDS || index >= count) {
    throw new RangeError(`--shard: expected i/n with 1 ≤ n ≤ ${MAX_SHARDS} and 0 ≤ i < n (e.g. 0/4), got ${JSON.stringify(text)}`)
  }
  return { index, count }
}

/**
 * Which shard a key belongs to: the first 48 bits of sha256(key) modulo the shard count.
 * Depends on the key alone, so every pod of an Indexed Job agrees on the split, whatever
 * order or machine it reads the input on; each key lands in exactly one shard.
 */
export function shardOf(key: string, count: number): number {
  if (count === 1) return 0
  return createHash('sha256').update(key).digest().readUIntBE(0, 6) % count
}

export function inShard(key: string, shard: Shard | undefined): boolean {
  return shard === undefined || shardOf(key, shard.count) === shard.index
}
