/**
 * The last N means served per model, for the drift gauge: a ring buffer each, tagged
 * with the model file's sha256 so that scores of a model version that was reloaded away
 * are dropped rather than compared with the new version's calibration. Fed as scores are
 * served; read at scrape time.
 */
export class ScoreWindows {
  readonly size: number
  readonly #windows = new Map<string, { sha256: string; values: Float64Array; next: number; count: number }>()

  constructor(size: number) {
    if (!Number.isInteger(size) || size < 1) throw new RangeError(`ScoreWindows: size must be an integer ≥ 1, got ${size}`)
    this.size = size
  }

  /** Adds a served mean of model `id` whose file has `sha256`. */
  push(id: string, sha256: string, mean: number): void {
    let w = this.#windows.get(id)
    if (!w || w.sha256 !== sha256) {
      w = { sha256, values: new Float64Array(this.size), next: 0, count: 0 }
      this.#windows.set(id, w)
    }
    w.values[w.next] = mean
    w.next = (w.next + 1) % this.size
    w.count = Math.min(this.size, w.count + 1)
  }

  /** The window of model `id` when it is full and of the file `sha256`; undefined otherwise. */
  full(id: string, sha256: string): number[] | undefined {
    const w = this.#windows.get(id)
    if (!w || w.sha256 !== sha256 || w.count < this.size) return undefined
    return Array.from(w.values)
  }
}
