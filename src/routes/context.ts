import type { TieredScoreCache } from '../cache/tiered-cache.js'
import type { Config } from '../config/load.js'
import { countAbandoned } from '../http/request-lifecycle.js'
import { ScoringSession } from '../scoring/cached-scoring.js'
import type { Weights } from '../scoring/combined.js'
import type { NimaModel } from '../scoring/nima-model.js'
import type { Scorer } from '../scoring/scorer.js'
import type { ImageSource } from '../fetching/image-source.js'
import type { Metrics } from '../metrics/metrics.js'
import type { ServiceState } from '../service-state.js'
import type { ModelReloader } from '../scoring/reload.js'
import type { ThreadPlan } from '../threads/resolve-threads.js'

/** What every route plugin is registered with: explicit dependencies, no globals. */
export interface RouteContext {
  config: Config
  state: ServiceState
  metrics: Metrics
  /** Where URL inputs come from (fetch under the per-host limit, observed). */
  images: ImageSource
  /** The score cache (src/cache/); undefined when SCORE_CACHE=off. */
  cache?: TieredScoreCache | undefined
  /** The thread plan the service runs with (absent in apps built without one). */
  threads?: ThreadPlan | undefined
  /** Hot reload of the models (absent in apps built without one). */
  models?: ModelReloader | undefined
}

export function parseModelList(value: string | undefined): string[] | undefined {
  return value === undefined ? undefined : value.split(',').filter((x) => x.length > 0)
}

/** One request's scoring through the score cache; fetch failures of a client gone count as abandoned at 'fetch'. */
export function scoringSession(ctx: RouteContext, scorer: Scorer, models: readonly NimaModel[], weights: Weights | undefined, signal: AbortSignal): ScoringSession {
  return new ScoringSession({
    scorer,
    cache: ctx.cache,
    images: ctx.images,
    models,
    weights,
    signal,
    onFetchError: (err) => countAbandoned(ctx.metrics, 'fetch', err),
  })
}
