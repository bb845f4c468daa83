import type { Config } from '../config/load.js'
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
  /** The thread plan the service runs with (absent in apps built without one). */
  threads?: ThreadPlan | undefined
  /** Hot reload of the models (absent in apps built without one). */
  models?: ModelReloader | undefined
}

export function parseModelList(value: string | undefined): string[] | undefined {
  return value === undefined ? undefined : value.split(',').filter((x) => x.length > 0)
}
