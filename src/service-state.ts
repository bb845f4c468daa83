import { NimaError } from './errors.js'
import type { Scorer } from './scoring/scorer.js'

/**
 * What the probes report: ready once models are loaded and warmed up, not ready again
 * as soon as shutdown begins (so the load balancer stops sending before we stop serving).
 */
export class ServiceState {
  #scorer: Scorer | undefined
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
