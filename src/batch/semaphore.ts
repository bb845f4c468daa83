/** A counting semaphore: at most `slots` holders at once, waiters served in arrival order. */
export class Semaphore {
  #free: number
  readonly #waiters: (() => void)[] = []

  constructor(slots: number) {
    if (!Number.isInteger(slots) || slots < 1) throw new RangeError(`Semaphore: slots must be an integer ≥ 1, got ${String(slots)}`)
    this.#free = slots
  }

  acquire(): Promise<void> {
    if (this.#free > 0) {
      this.#free -= 1
      return Promise.resolve()
    }
    return new Promise<void>((resolve) => this.#waiters.push(resolve))
  }

  release(): void {
    const next = this.#waiters.shift()
    if (next) next()
    else this.#free += 1
  }

  async run<T>(fn: () => Promise<T>): Promise<T> {
    await this.acquire()
    try {
      return await fn()
    } finally {
      this.release()
    }
  }
}
