/**
 * An in-process least-recently-used map of string keys to string values, bounded in
 * bytes rather than entries: entries differ in size (a score is ~250 characters, a URL
 * record ~150), and what an operator sizes is the pod's memory.
 *
 * An entry is charged what V8 holds for it: both strings at two bytes a character (the
 * worst case; one-byte strings take half) plus ENTRY_OVERHEAD_BYTES for the bookkeeping
 * and the two string headers. So `usedBytes` never understates the memory held.
 */
import { LRUCache } from 'lru-cache'

/**
 * lru-cache's bookkeeping for one entry plus the two string headers, rounded up. Measured on
 * Node 20 (bench/memory-lru.ts, 100,000 entries): 86 bytes of bookkeeping per entry beyond
 * the strings (the hand-written Map LRU this replaced: 72), which leaves 42 for the two
 * string headers.
 */
export const ENTRY_OVERHEAD_BYTES = 128

export function entryBytes(key: string, value: string): number {
  return 2 * (key.length + value.length) + ENTRY_OVERHEAD_BYTES
}

/**
 * lru-cache does the bookkeeping (recency, the byte bound through `sizeCalculation`,
 * eviction); this class adds the rule of what an entry costs and counts evictions for
 * the metrics. It replaced a hand-written Map LRU: same hits, about 3× the operations per
 * millisecond (bench/memory-lru.ts: 149–194 → 420–560 on a loaded 2-core machine), since a
 * hit no longer deletes and re-inserts a Map entry.
 */
export class MemoryLru {
  readonly maxBytes: number
  #evictions = 0
  readonly #entries: LRUCache<string, string> | undefined

  constructor(maxBytes: number) {
    if (!Number.isInteger(maxBytes) || maxBytes < 0) throw new RangeError(`MemoryLru: maxBytes must be an integer ≥ 0, got ${String(maxBytes)}`)
    this.maxBytes = maxBytes
    // lru-cache refuses a bound of 0; a cache of 0 bytes keeps nothing.
    this.#entries =
      maxBytes === 0
        ? undefined
        : new LRUCache<string, string>({
            maxSize: maxBytes,
            sizeCalculation: (value, key) => entryBytes(key, value),
            dispose: (_value, _key, reason) => {
              if (reason === 'evict') this.#evictions += 1
            },
          })
  }

  get usedBytes(): number {
    return this.#entries?.calculatedSize ?? 0
  }

  get size(): number {
    return this.#entries?.size ?? 0
  }

  /** Entries dropped to make room, since start. */
  get evictions(): number {
    return this.#evictions
  }

  get(key: string): string | undefined {
    return this.#entries?.get(key)
  }

  /**
   * Stores `value`, evicting the least recently used entries until it fits. An entry
   * larger than the whole bound is not stored (and any older value of its key is dropped).
   */
  set(key: string, value: string): void {
    this.#entries?.set(key, value)
  }

  delete(key: string): void {
    this.#entries?.delete(key)
  }

  clear(): void {
    this.#entries?.clear()
  }
}
