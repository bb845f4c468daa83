import type { Config } from '../config/load.js'
import { isNimaError } from '../errors.js'
import { createAddressPolicy, type AddressPolicy } from './address-policy.js'
import { createImageFetcher, type CachingHeaders, type ImageFetcher, type Validators } from './fetch-image.js'
import { createHostLimiter, type HostLimiter } from './host-limiter.js'
import { redactUrl } from './redact-url.js'
import { SPAN, traced } from '../util/tracing.js'

/** One finished fetch, for whoever observes them (the service's metrics; nobody in the batch CLI). */
export interface FetchObservation {
  /** 'ok', 'not_modified' (a 304 to a revalidation), or the NimaError code it failed with, or 'error' for anything else. */
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
  fetch(url: string, signal?: AbortSignal): Promise<SourcedImage>
  /**
   * `fetch`, sending `validators` (If-None-Match / If-Modified-Since): a 304 resolves as
   * `{notModified: true}`, with no body downloaded. Same host queue, same SSRF checks.
   */
  revalidate(url: string, validators: Validators, signal?: AbortSignal): Promise<SourcedImage | SourcedNotModified>
  /** Fetches running and waiting, by host. */
  readonly hosts: Pick<HostLimiter, 'active' | 'pending' | 'hosts' | 'maxPerHost'>
  /** Closes pooled connections once in-flight fetches finish. */
  close(): Promise<void>
}

export interface SourcedImage {
  bytes: Buffer
  fetchMs: number
  /** The response's validators and Cache-Control, for the score cache. */
  caching: CachingHeaders
}

export interface SourcedNotModified {
  notModified: true
  fetchMs: number
  caching: CachingHeaders
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

  // One span per URL asked for, around the host queue and every hop (each hop's request is
  // a client span of the undici instrumentation); the URL as the logs show it.
  function get(url: string, validators: Validators | undefined, signal: AbortSignal | undefined): Promise<SourcedImage | SourcedNotModified> {
    return traced(SPAN.fetch, () => ({ 'url.full': redactUrl(url), 'nima.fetch.revalidate': validators !== undefined }), async (span) => {
      const got = await fetchOnce(url, validators, signal)
      span?.setAttributes('notModified' in got ? { 'nima.fetch.outcome': 'not_modified' } : { 'nima.fetch.outcome': 'ok', 'http.response.body.size': got.bytes.length })
      return got
    })
  }

  async function fetchOnce(url: string, validators: Validators | undefined, signal: AbortSignal | undefined): Promise<SourcedImage | SourcedNotModified> {
    const started = performance.now()
    const go = () => (validators ? fetcher.revalidate(url, validators, signal) : fetcher.fetch(url, signal))
    try {
      const host = hostOf(url)
      // An unparsable URL has no host to queue on: the fetcher refuses it at once (NIMA_URL_INVALID).
      const got = await (host === undefined ? go() : hosts.run(host, go, signal))
      const fetchMs = performance.now() - started
      if ('notModified' in got) {
        observe({ outcome: 'not_modified', ms: fetchMs })
        return { notModified: true, fetchMs, caching: got.caching }
      }
      observe({ outcome: 'ok', ms: fetchMs, bytes: got.bytes.length })
      return { bytes: got.bytes, fetchMs, caching: got.caching }
    } catch (err) {
      observe({ outcome: isNimaError(err) ? err.code : 'error', ms: performance.now() - started })
      throw err
    }
  }

  return {
    hosts,
    fetch: (url, signal) => get(url, undefined, signal) as Promise<SourcedImage>,
    revalidate: (url, validators, signal) => get(url, validators, signal),
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
