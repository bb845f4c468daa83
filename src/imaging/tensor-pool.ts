/**
 * Reused input tensors. An image's tensor (224×224×3 float32: 602 KB) lives from its
 * decode until its batch is copied into the session's input: under load, the queueing
 * time. Allocated per image, those buffers outlived V8's young-generation collections
 * and only full collections freed them, 0.6 MB of garbage per image on top of the
 * request body (docs/performance.md, "Garbage collection under load"). Taken from here
 * and given back once every model has read them, they are never garbage.
 */
export class TensorPool {
  readonly #free = new Map<number, Float32Array[]>()
  readonly #keep: number

  /** @param keep most idle tensors kept per length; the rest are left to the collector. */
  constructor(keep: number) {
    if (!Number.isInteger(keep) || keep < 0) throw new RangeError(`TensorPool: keep must be an integer ≥ 0, got ${keep}`)
    this.#keep = keep
  }

  /** A tensor of `length` floats; its contents are whatever the last user left. */
  take(length: number): Float32Array {
    return this.#free.get(length)?.pop() ?? new Float32Array(length)
  }

  /** Gives `tensor` back. Its holder must not read or write it afterwards. */
  give(tensor: Float32Array): void {
    let free = this.#free.get(tensor.length)
    if (!free) this.#free.set(tensor.length, (free = []))
    if (free.length < this.#keep && !free.includes(tensor)) free.push(tensor)
  }

  /** Idle tensors held, all lengths together. */
  get idle(): number {
    let n = 0
    for (const free of this.#free.values()) n += free.length
    return n
  }
}
