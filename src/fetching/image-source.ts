import type { Config } from '../config/load.js'
import { isNimaError } from '../errors.js'
import { createAddressPolicy, type AddressPolicy } from './address-policy.js'
import { createImageFetcher, type ImageFetcher } from './fetch-image.js'
import { createHostLimiter, type HostLimiter } from './host-limiter.js'

/** One finished fetch, for whoever observes them (the service's metrics; nobody in the batch CLI). */
export interface FetchObservation {
  /** 'ok', or the NimaError code it failed with, or 'error' for anything else. */
  outcome: string
  ms: number
  /** Body size; only on success. */
  bytes?: number
}

export interface ImageSource {
  /**
   * The bytes behind `url`: fetched by the SSRF-safe fetcher, under the per-host limit
   * (waiting in arrival order for a slot of the URL's host, across every caller of this
   * source). Rejects as `ImageFetcher.fetch` does, or with `signal.reason`.
   */
  fetch(url: string, signal?: AbortSignal): Promise<{ bytes: Buffer; fetchMs: number }>
  /** Fetches running and waiting, by host. */
  readonly hosts: Pick<HostLimiter, 'active' | 'pending' | 'hosts' | 'maxPerHost'>
  /** Closes pooled connections once in-flight fetches finish. */
  close(): Promise<void>
}

export type ImageSourceConfig = Pick<
  Config,
  'urlAllowlist' | 'URL_MAX_BYTES' | 'URL_MAX_REDIRECTS' | 'URL_CONNECT_TIMEOUT_MS' | 'URL_HEADERS_TIMEOUT_MS' | 'URL_BODY_TIMEOUT_MS' | 'RANK_PER_HOST_CONCURRENCY'
>

export interface ImageSourceOptions {
  /** Default: the configuration's URL_ALLOWLIST over the built-in deny list. */
  policy?: AddressPolicy
  /** Default: RANK_PER_HOST_CONCURRENCY. */
  perHost?: number
  onFetch?: (observation: FetchObservation) => void
  /** For tests: a fetcher of their own instead of the configured one. */
  fetcher?: ImageFetcher
}

/**
 * Where every URL input of the service and the batch CLI comes from, built once per
 * process from the configuration: the route or the batch pipeline asks for a URL and gets
 * bytes, and the host queue, the fetcher and the observation stay behind this one door.
 */
export function createImageSource(config: ImageSourceConfig, options: ImageSourceOptions = {}): ImageSource {
  const fetcher =
    options.fetcher ??
    createImageFetcher({
      policy: options.policy ?? createAddressPolicy({ allow: [...config.urlAllowlist] }),
      maxBytes: config.URL_MAX_BYTES,
      maxRedirects: config.URL_MAX_REDIRECTS,
      connectTimeoutMs: config.URL_CONNECT_TIMEOUT_MS,
      headersTimeoutMs: config.URL_HEADERS_TIMEOUT_MS,
      bodyTimeoutMs: config.URL_BODY_TIMEOUT_MS,
    })
  const hosts = createHostLimiter(options.perHost ?? config.RANK_PER_HOST_CONCURRENCY)
  const observe = options.onFetch ?? (() => {})

  return {
    hosts,
    async fetch(url, signal) {
      const started = performance.now()
      try {
        const host = hostOf(url)
        // An unparsable URL has no host to queue on: the fetcher refuses it at once (NIMA_URL_INVALID).
        const { bytes } = await (host === undefined ? fetcher.fetch(url, signal) : hosts.run(host, () => fetcher.fetch(url, signal), signal))
        const fetchMs = performance.now() - started
        observe({ outcome: 'ok', ms: fetchMs, bytes: bytes.length })
        return { bytes, fetchMs }
      } catch (err) {
        observe({ outcome: isNimaError(err) ? err.code : 'error', ms: performance.now() - started })
        throw err
      }
    },
    close: () => fetcher.close(),
  }
}

function hostOf(url: string): string | undefined {
  try {
    return new URL(url).host
  } catch {
    return undefined
  }
}
