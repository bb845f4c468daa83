import type { Config } from '../config/load.js'
import { createAddressPolicy, type AddressPolicy } from './address-policy.js'
import { createImageFetcher, type ImageFetcher } from './fetch-image.js'

/** The image fetcher the service configuration describes (URL_* settings, allowlist). */
export function imageFetcherFromConfig(
  config: Pick<Config, 'urlAllowlist' | 'URL_MAX_BYTES' | 'URL_MAX_REDIRECTS' | 'URL_CONNECT_TIMEOUT_MS' | 'URL_HEADERS_TIMEOUT_MS' | 'URL_BODY_TIMEOUT_MS'>,
  policy: AddressPolicy = createAddressPolicy({ allow: [...config.urlAllowlist] }),
): ImageFetcher {
  return createImageFetcher({
    policy,
    maxBytes: config.URL_MAX_BYTES,
    maxRedirects: config.URL_MAX_REDIRECTS,
    connectTimeoutMs: config.URL_CONNECT_TIMEOUT_MS,
    headersTimeoutMs: config.URL_HEADERS_TIMEOUT_MS,
    bodyTimeoutMs: config.URL_BODY_TIMEOUT_MS,
  })
}
