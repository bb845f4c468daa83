import { NimaError } from './errors.js'
import type { Scorer } from './scoring/scorer.js'

/**
 * What the probes report: ready once models are loaded and warmed up, not ready again
 * as soon as shutdown begins (so the load balancer stops sending before we stop serving).
 */
export class ServiceState {
  #scorer: Scorer | undefined
  /** Leases held on each scorer, and the retired scorers still leased (disposed at their last release). */
  readonly #leases = new Map<Scorer, number>()
  readonly #retiring = new Map<Scorer, () => void>()
  #draining = false
  #inflight = 0
  #onChange: (ready: boolean) => void

  constructor(onChange: (ready: boolean) => void = () => {}) {
    this.#onChange = onChange
    onChange(false)
  }

  get ready(): boolean {
    return this.#scorer !== undefined && !this.#draining
  }

  get draining(): boolean {
    return this.#draining
  }

  get scorer(): Scorer | undefined {
    return this.#scorer
  }

  get inflight(): number {
    return this.#inflight
  }

  setScorer(scorer: Scorer): void {
    this.#scorer = scorer
    this.#onChange(this.ready)
  }

  startDraining(): void {
    this.#draining = true
    this.#onChange(false)
  }

  /**
   * Puts `next` in service at once: requests from now on get it, requests already holding
   * the previous scorer finish on it, and it is disposed when the last of them releases
   * it. Resolves once the previous scorer has been disposed.
   */
  swapScorer(next: Scorer): Promise<void> {
    const previous = this.#scorer
    this.setScorer(next)
    if (!previous || previous === next) return Promise.resolve()
    if ((this.#leases.get(previous) ?? 0) === 0) return previous.dispose()
    return new Promise<void>((resolve, reject) => this.#retiring.set(previous, () => previous.dispose().then(resolve, reject)))
  }

  /**
   * The scorer in service, held until `release` is called: a model swap never disposes a
   * scorer a request still holds. A 503 while models load or the service drains.
   */
  acquireScorer(): { scorer: Scorer; release: () => void } {
    const scorer = this.requireScorer()
    this.#leases.set(scorer, (this.#leases.get(scorer) ?? 0) + 1)
    let released = false
    return {
      scorer,
      release: () => {
        if (released) return
        released = true
        const left = (this.#leases.get(scorer) ?? 1) - 1
        if (left > 0) return void this.#leases.set(scorer, left)
        this.#leases.delete(scorer)
        const retire = this.#retiring.get(scorer)
        if (retire) {
          this.#retiring.delete(scorer)
          retire()
        }
      },
    }
  }

  /** The scorer, or a 503 while models load or the service drains. */
  requireScorer(): Scorer {
    if (this.#draining) throw new NimaError('NIMA_NOT_READY', 'the service is shutting down', { headers: { 'retry-after': '1' } })
    if (!this.#scorer) throw new NimaError('NIMA_NOT_READY', 'models are still loading', { headers: { 'retry-after': '1' } })
    return this.#scorer
  }

  /** Counts a request as in flight until the returned function is called. */
  enter(): () => void {
    this.#inflight++
    let left = false
    return () => {
      if (!left) {
        left = true
        this.#inflight--
      }
    }
  }
}
