/**
 * An in-process least-recently-used map of string keys to string values, bounded in
 * bytes rather than entries: entries differ in size (a score is ~250 characters, a URL
 * record ~150), and what an operator sizes is the pod's memory.
 *
 * An entry is charged what V8 holds for it: both strings at two bytes a character (the
 * worst case; one-byte strings take half) plus ENTRY_OVERHEAD_BYTES for the Map slot and
 * the two string headers. So `usedBytes` never understates the memory held, and the
 * process holds at most `maxBytes` for the cache plus the Map's own table.
 */

/** Map entry, two string headers and the bookkeeping record, rounded up (measured on Node 20: ~90 bytes). */
export const ENTRY_OVERHEAD_BYTES = 128

export function entryBytes(key: string, value: string): number {
  return 2 * (key.length + value.length) + ENTRY_OVERHEAD_BYTES
}

export class MemoryLru {
  readonly maxBytes: number
  #used = 0
  #evictions = 0
  // A Map iterates in insertion order: re-inserting on each hit keeps the least recently used first.
  readonly #entries = new Map<string, string>()

  constructor(maxBytes: number) {
    if (!Number.isInteger(maxBytes) || maxBytes < 0) throw new RangeError(`MemoryLru: maxBytes must be an integer ≥ 0, got ${String(maxBytes)}`)
    this.maxBytes = maxBytes
  }

  get usedBytes(): number {
    return this.#used
  }

  get size(): number {
    return this.#entries.size
  }

  /** Entries dropped to make room, since start. */
  get evictions(): number {
    return this.#evictions
  }

  get(key: string): string | undefined {
    const value = this.#entries.get(key)
    if (value === undefined) return undefined
    this.#entries.delete(key)
    this.#entries.set(key, value)
    return value
  }

  /**
   * Stores `value`, evicting the least recently used entries until it fits. An entry
   * larger than the whole bound is not stored (and any older value of its key is dropped).
   */
  set(key: string, value: string): void {
    this.delete(key)
    const cost = entryBytes(key, value)
    if (cost > this.maxBytes) return
    while (this.#used + cost > this.maxBytes) {
      const oldest = this.#entries.keys().next().value!
      this.delete(oldest)
      this.#evictions += 1
    }
    this.#entries.set(key, value)
    this.#used += cost
  }

  delete(key: string): void {
    const old = this.#entries.get(key)
    if (old === undefined) return
    this.#entries.delete(key)
    this.#used -= entryBytes(key, old)
  }

  clear(): void {
    this.#entries.clear()
    this.#used = 0
  }
}
