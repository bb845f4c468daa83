import type { Config } from '../config/load.js'
import type { Metrics } from '../metrics/metrics.js'
import type { ServiceState } from '../service-state.js'

/** Fetches image bytes for a URL; the SSRF-safe fetcher in production. */
export type FetchImage = (url: string, signal: AbortSignal) => Promise<{ bytes: Buffer }>

/** What every route plugin is registered with: explicit dependencies, no globals. */
export interface RouteContext {
  config: Config
  state: ServiceState
  metrics: Metrics
  fetchImage: FetchImage
  /** Runs a fetch under the per-host concurrency limit. */
  limitHost: <T>(url: string, fn: () => Promise<T>, signal?: AbortSignal) => Promise<T>
}

export function parseModelList(value: string | undefined): string[] | undefined {
  return value === undefined ? undefined : value.split(',').filter((x) => x.length > 0)
}
