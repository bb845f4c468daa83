/**
 * Fetches an image by URL on behalf of anyone on the network, without becoming a proxy
 * into the internal network (SSRF).
 *
 * How a hop works:
 * 1. The URL is checked: http(s) only, no credentials.
 * 2. The hostname is resolved ONCE, with the injectable `lookup`. Every address that
 *    comes back must pass the {@link AddressPolicy}; one refused address refuses the
 *    hop. An IP-literal host is checked the same way, without a lookup.
 * 3. The request goes to the checked address itself: the undici origin is
 *    `scheme://<address>:<port>`, with the original `Host` header and TLS servername
 *    (SNI and certificate checks use the hostname). undici never resolves anything —
 *    the connector refuses any non-literal host — so there is no second lookup for a
 *    rebinding DNS server to answer differently.
 * 4. Redirects (301/302/303/307/308) are followed by hand, at most `maxRedirects`, and
 *    each hop goes through steps 1–3 again.
 *
 * `revalidate` is the same walk with `If-None-Match` / `If-Modified-Since` (the score
 * cache's validators of a URL) on every hop; a 304 then answers without a body.
 *
 * Connections are pooled per checked address in one undici Agent per fetcher; the
 * `Host` header and, for https, the servername are per request, so a pooled connection
 * is only ever reused for a host that resolved to that very address.
 */
import { lookup as dnsLookup } from 'node:dns/promises'
import net from 'node:net'
import { performance } from 'node:perf_hooks'
import tls from 'node:tls'
import { Agent, buildConnector, type Dispatcher } from 'undici'
import { NimaError, isNimaError } from '../errors.js'
import { createAddressPolicy, type AddressPolicy } from './address-policy.js'
import { redactUrl } from './redact-url.js'

export interface LookupAddress {
  address: string
  family: number
}

/** Resolves a hostname to all of its addresses (like `dns.lookup(host, { all: true })`). */
export type LookupFunction = (hostname: string) => Promise<readonly LookupAddress[]>

export interface ImageFetcherOptions {
  /** Which addresses may be fetched. Default: `createAddressPolicy()` (no allowlist). */
  policy?: AddressPolicy
  /** Hostname resolver. Default: `dns.promises.lookup(hostname, { all: true })`. */
  lookup?: LookupFunction
  /** Largest body accepted, in bytes. Default: 20 MiB. */
  maxBytes?: number
  /** Redirects followed before NIMA_TOO_MANY_REDIRECTS; 0 refuses any. Default: 3. */
  maxRedirects?: number
  /** Budget for the DNS lookup, and separately for TCP+TLS connect. Default: 5000 ms. */
  connectTimeoutMs?: number
  /**
   * From request sent to response headers received. Default: 10000 ms. undici checks it
   * on a ~0.5 s tick, so it may fire up to about half a second late.
   */
  headersTimeoutMs?: number
  /** From response headers to the last body byte (whole body, not idle time). Default: 30000 ms. */
  bodyTimeoutMs?: number
  /** User-Agent header. Default: {@link DEFAULT_USER_AGENT}. */
  userAgent?: string
  /** Pooled connections per upstream address. Default: 8. */
  connectionsPerOrigin?: number
  /** How long an idle pooled connection is kept. Default: 4000 ms. */
  keepAliveTimeoutMs?: number
  /**
   * Extra trusted CA certificates (PEM), for intranet image stores with a private CA.
   * Added to Node's bundled roots, never replacing them. Default: none.
   */
  ca?: string | Buffer | ReadonlyArray<string | Buffer>
}

/** Options of the one-shot {@link fetchImage}; same as the fetcher's. */
export type FetchImageOptions = ImageFetcherOptions

/** What a cache needs from a response's headers (values as sent; absent when not sent or unusable). */
export interface CachingHeaders {
  etag?: string
  lastModified?: string
  cacheControl?: string
  /** Seconds, from the Age header. */
  age?: number
}

/** Validators of a previous answer, sent as If-None-Match / If-Modified-Since. */
export interface Validators {
  etag?: string
  lastModified?: string
}

/** A 304 to a revalidation: the body the validators name is still current. */
export interface NotModified {
  notModified: true
  finalUrl: string
  caching: CachingHeaders
  redirects: number
  timings: { dnsMs?: number; totalMs: number }
  remoteAddress: string
}

export interface FetchedImage {
  bytes: Buffer
  caching: CachingHeaders
  /** URL of the last hop, query string included: log it only through `redactUrl`. */
  finalUrl: string
  /** As sent by the upstream. Never trust it: sniff `bytes` instead. */
  contentType?: string
  /** Redirects followed. */
  redirects: number
  timings: {
    /** Time spent resolving hostnames, all hops together; absent when every host was an IP literal. */
    dnsMs?: number
    totalMs: number
  }
  /** The address the final response came from. */
  remoteAddress: string
}

export interface ImageFetcher {
  /**
   * Fetches `url`. Rejects with a NimaError (NIMA_URL_INVALID, NIMA_URL_BLOCKED,
   * NIMA_URL_TOO_LARGE, NIMA_UPSTREAM_FAILED, NIMA_TOO_MANY_REDIRECTS,
   * NIMA_UPSTREAM_TIMEOUT), or with `signal.reason` when `signal` aborts.
   */
  fetch(url: string, signal?: AbortSignal): Promise<FetchedImage>
  /** `fetch` asking the upstream whether `validators` still name the current body; a 304 resolves as NotModified. */
  revalidate(url: string, validators: Validators, signal?: AbortSignal): Promise<FetchedImage | NotModified>
  /** Closes pooled connections, after in-flight requests finish. */
  close(): Promise<void>
}

export const DEFAULT_USER_AGENT = 'nima-serve (image fetcher)'

export const IMAGE_FETCHER_DEFAULTS = Object.freeze({
  maxBytes: 20 * 1024 * 1024,
  maxRedirects: 3,
  connectTimeoutMs: 5_000,
  headersTimeoutMs: 10_000,
  bodyTimeoutMs: 30_000,
  userAgent: DEFAULT_USER_AGENT,
  connectionsPerOrigin: 8,
  keepAliveTimeoutMs: 4_000,
})

/** Longest URL accepted, in characters. */
export const MAX_URL_LENGTH = 8 * 1024

const REDIRECT_STATUSES = new Set([301, 302, 303, 307, 308])

/** Errors that mean nothing was sent, so the next checked address may be tried. */
const STALE_SOCKET_CODES = new Set(['UND_ERR_SOCKET', 'ECONNRESET', 'EPIPE'])
const CONNECT_ERROR_CODES = new Set(['UND_ERR_CONNECT_TIMEOUT', 'ECONNREFUSED', 'ENETUNREACH', 'EHOSTUNREACH', 'EADDRNOTAVAIL'])

interface ResolvedConfig {
  policy: AddressPolicy
  lookup: LookupFunction
  maxBytes: number
  maxRedirects: number
  connectTimeoutMs: number
  headersTimeoutMs: number
  bodyTimeoutMs: number
  userAgent: string
  connectionsPerOrigin: number
  keepAliveTimeoutMs: number
  ca: ReadonlyArray<string | Buffer>
}

const defaultLookup: LookupFunction = (hostname) => dnsLookup(hostname, { all: true })

function checkInteger(name: string, value: unknown, min: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
    throw new TypeError(`Image fetcher option ${name} must be an integer ≥ ${min}, got ${JSON.stringify(value) ?? String(value)}`)
  }
  return value
}

function resolveConfig(options: ImageFetcherOptions): ResolvedConfig {
  const d = IMAGE_FETCHER_DEFAULTS
  const lookup = options.lookup ?? defaultLookup
  if (typeof lookup !== 'function') throw new TypeError(`Image fetcher option lookup must be a function, got ${typeof lookup}`)
  const userAgent = options.userAgent ?? d.userAgent
  if (typeof userAgent !== 'string' || userAgent.length === 0 || /[\r\n]/.test(userAgent)) {
    throw new TypeError('Image fetcher option userAgent must be a non-empty single-line string')
  }
  const ca = options.ca === undefined ? [] : Array.isArray(options.ca) ? options.ca : [options.ca]
  if (!ca.every((pem: unknown) => typeof pem === 'string' || Buffer.isBuffer(pem))) {
    throw new TypeError('Image fetcher option ca must be PEM text or Buffers')
  }
  const policy = options.policy ?? createAddressPolicy()
  if (typeof policy?.checkAddress !== 'function') {
    throw new TypeError('Image fetcher option policy must come from createAddressPolicy()')
  }
  return {
    policy,
    lookup,
    userAgent,
    ca,
    maxBytes: checkInteger('maxBytes', options.maxBytes ?? d.maxBytes, 1),
    maxRedirects: checkInteger('maxRedirects', options.maxRedirects ?? d.maxRedirects, 0),
    connectTimeoutMs: checkInteger('connectTimeoutMs', options.connectTimeoutMs ?? d.connectTimeoutMs, 1),
    headersTimeoutMs: checkInteger('headersTimeoutMs', options.headersTimeoutMs ?? d.headersTimeoutMs, 1),
    bodyTimeoutMs: checkInteger('bodyTimeoutMs', options.bodyTimeoutMs ?? d.bodyTimeoutMs, 1),
    connectionsPerOrigin: checkInteger('connectionsPerOrigin', options.connectionsPerOrigin ?? d.connectionsPerOrigin, 1),
    keepAliveTimeoutMs: checkInteger('keepAliveTimeoutMs', options.keepAliveTimeoutMs ?? d.keepAliveTimeoutMs, 1),
  }
}

/**
 * Parses and checks one hop's URL: http(s) only, no credentials, fragment dropped.
 * With `base` (the URL that redirected here), `raw` may be relative and the messages
 * name the redirect target.
 */
function parseHopUrl(raw: string, base?: URL): URL {
  const what = base ? 'The redirect target' : 'The image URL'
  if (typeof raw !== 'string' || raw.length === 0) throw new NimaError('NIMA_URL_INVALID', `${what} is empty`)
  if (raw.length > MAX_URL_LENGTH) throw new NimaError('NIMA_URL_INVALID', `${what} is longer than ${MAX_URL_LENGTH} characters`)
  let url: URL
  try {
    url = new URL(raw, base)
  } catch {
    // Never echo the raw text: it may carry secrets.
    throw new NimaError('NIMA_URL_INVALID', `${what} could not be parsed`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new NimaError('NIMA_URL_INVALID', `${what} has the unsupported scheme "${url.protocol.slice(0, 32)}"; only http and https are allowed`)
  }
  if (url.username !== '' || url.password !== '') {
    throw new NimaError('NIMA_URL_INVALID', `${what} must not contain credentials`)
  }
  if (url.hostname === '') throw new NimaError('NIMA_URL_INVALID', `${what} has no host`)
  url.hash = ''
  return url
}

/** Resolves `signal`'s abort into a rejection of `promise`'s race. */
function raceAbort<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return promise
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason)
    if (signal.aborted) {
      onAbort()
      return
    }
    signal.addEventListener('abort', onAbort, { once: true })
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort))
  })
}

interface CheckedTarget {
  /** Checked addresses, connection order. */
  addresses: string[]
  dnsMs?: number
}

function errorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' ? code : undefined
}

function createFetcherState(config: ResolvedConfig) {
  const baseConnect = buildConnector({
    timeout: config.connectTimeoutMs,
    ...(config.ca.length > 0 ? { ca: [...tls.rootCertificates, ...config.ca] } : {}),
  })
  // Belt and braces: every origin we dispatch to is an IP literal that passed the
  // policy. A hostname here would mean a lookup outside our control, so refuse it.
  const connect: buildConnector.connector = (opts, callback) => {
    if (net.isIP(opts.hostname) === 0) {
      callback(new Error('image fetcher: refusing to connect to a non-literal host'), null)
      return
    }
    baseConnect(opts, callback)
  }
  const agent = new Agent({
    connect,
    connections: config.connectionsPerOrigin,
    keepAliveTimeout: config.keepAliveTimeoutMs,
    keepAliveMaxTimeout: config.keepAliveTimeoutMs,
    headersTimeout: config.headersTimeoutMs,
    bodyTimeout: config.bodyTimeoutMs,
  })
  return { config, agent }
}

type FetcherState = ReturnType<typeof createFetcherState>

async function lookupWithTimeout(config: ResolvedConfig, hostname: string, signal: AbortSignal | undefined): Promise<readonly LookupAddress[]> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(new NimaError('NIMA_UPSTREAM_TIMEOUT', `Resolving "${hostname}" took longer than ${config.connectTimeoutMs} ms`))
    }, config.connectTimeoutMs)
  })
  try {
    return await raceAbort(Promise.race([Promise.resolve().then(() => config.lookup(hostname)), timeout]), signal)
  } catch (err) {
    if (isNimaError(err) || signal?.aborted) throw err
    const code = errorCode(err)
    throw new NimaError('NIMA_UPSTREAM_FAILED', `Resolving "${hostname}" failed${code ? ` (${code})` : ''}`, { cause: err })
  } finally {
    clearTimeout(timer)
  }
}

/** Resolves the hop's host once and checks every address against the policy. */
async function checkTarget(state: FetcherState, url: URL, signal: AbortSignal | undefined): Promise<CheckedTarget> {
  const { policy } = state.config
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname

  if (net.isIP(host) !== 0) {
    const verdict = policy.checkAddress(host)
    if (!verdict.allowed) {
      throw new NimaError('NIMA_URL_BLOCKED', `The address ${host} is refused (${verdict.range})`)
    }
    return { addresses: [host] }
  }

  const started = performance.now()
  const results = await lookupWithTimeout(state.config, host, signal)
  const dnsMs = performance.now() - started

  const addresses: string[] = []
  for (const result of Array.isArray(results) ? results : []) {
    const address = typeof result?.address === 'string' ? result.address : ''
    if (net.isIP(address) === 0) {
      throw new NimaError('NIMA_UPSTREAM_FAILED', `Resolving "${host}" returned something that is not an IP address`)
    }
    const verdict = policy.checkAddress(address, host)
    if (!verdict.allowed) {
      // The client learns that the name is refused, not which internal address it has.
      throw new NimaError('NIMA_URL_BLOCKED', `The host "${host}" resolves to a refused address`, {
        cause: new Error(`${host} resolves to ${address} (${verdict.range})`),
      })
    }
    if (!addresses.includes(address)) addresses.push(address)
  }
  if (addresses.length === 0) {
    throw new NimaError('NIMA_UPSTREAM_FAILED', `Resolving "${host}" returned no address`)
  }
  return { addresses, dnsMs }
}

/** First address, then the first of the other family (a minimal happy-eyeballs fallback). */
function connectionCandidates(addresses: readonly string[]): string[] {
  const first = addresses[0]!
  const firstFamily = net.isIP(first)
  const other = addresses.find((address) => net.isIP(address) !== firstFamily)
  return other === undefined ? [first] : [first, other]
}

function originFor(url: URL, address: string): string {
  const port = url.port !== '' ? url.port : url.protocol === 'https:' ? '443' : '80'
  const host = net.isIPv6(address) ? `[${address}]` : address
  return `${url.protocol}//${host}:${port}`
}

function headerValue(headers: Dispatcher.ResponseData['headers'], name: string): string | undefined {
  const value = headers[name]
  if (Array.isArray(value)) return value[0]
  return value
}

async function sendHop(
  state: FetcherState,
  url: URL,
  target: CheckedTarget,
  signal: AbortSignal | undefined,
  conditional: Record<string, string>,
): Promise<{ response: Dispatcher.ResponseData; remoteAddress: string }> {
  const { config, agent } = state
  const candidates = connectionCandidates(target.addresses)
  let staleRetried = false
  for (let i = 0; ; i++) {
    const address = candidates[i]!
    try {
      const response = await agent.request({
        origin: originFor(url, address),
        path: `${url.pathname}${url.search}`,
        method: 'GET',
        headers: {
          // The undici origin is the address; the upstream must still see its name.
          // For https, undici derives the TLS servername from this header.
          host: url.host,
          'user-agent': config.userAgent,
          accept: 'image/*, */*;q=0.5',
          // No compression: maxBytes then bounds what we hold, with no inflation step.
          'accept-encoding': 'identity',
          ...conditional,
        },
        signal: signal ?? null,
        headersTimeout: config.headersTimeoutMs,
        bodyTimeout: config.bodyTimeoutMs,
      })
      return { response, remoteAddress: address }
    } catch (err) {
      const code = errorCode(err)
      // A pooled keep-alive socket the upstream closed just as we reused it fails before
      // any response arrives. The request is a GET, so one retry on a fresh socket is safe.
      if (!staleRetried && !signal?.aborted && code !== undefined && STALE_SOCKET_CODES.has(code)) {
        staleRetried = true
        i--
        continue
      }
      const isLast = i === candidates.length - 1
      if (isLast || signal?.aborted || code === undefined || !CONNECT_ERROR_CODES.has(code)) throw err
    }
  }
}

async function readBody(config: ResolvedConfig, url: URL, response: Dispatcher.ResponseData): Promise<Buffer> {
  const { body } = response
  const tooLarge = (): NimaError => new NimaError('NIMA_URL_TOO_LARGE', `The image at ${redactUrl(url)} is larger than ${config.maxBytes} bytes`)

  const declared = headerValue(response.headers, 'content-length')
  if (declared !== undefined && Number(declared) > config.maxBytes) {
    discard(body)
    throw tooLarge()
  }

  // Whole-body deadline: undici's bodyTimeout only bounds the gap between chunks, so
  // a server trickling one byte a second would otherwise hold us forever.
  const timer = setTimeout(() => {
    body.destroy(new NimaError('NIMA_UPSTREAM_TIMEOUT', `The body of ${redactUrl(url)} did not arrive within ${config.bodyTimeoutMs} ms`))
  }, config.bodyTimeoutMs)
  try {
    const chunks: Buffer[] = []
    let total = 0
    for await (const chunk of body as AsyncIterable<Buffer>) {
      total += chunk.length
      if (total > config.maxBytes) {
        // Stop now: destroying the body aborts the request and closes the socket.
        discard(body)
        throw tooLarge()
      }
      chunks.push(chunk)
    }
    return Buffer.concat(chunks, total)
  } finally {
    clearTimeout(timer)
  }
}

/**
 * Drops a response body we will not read. Destroying it aborts the request and closes
 * the socket; the abort error it then emits is expected, so it is swallowed here.
 */
function discard(body: Dispatcher.ResponseData['body']): void {
  body.on('error', () => {})
  body.destroy()
}

function toFetchError(err: unknown, url: URL, config: ResolvedConfig): NimaError {
  if (isNimaError(err)) return err
  const code = errorCode(err)
  const where = redactUrl(url)
  switch (code) {
    case 'UND_ERR_CONNECT_TIMEOUT':
      return new NimaError('NIMA_UPSTREAM_TIMEOUT', `Connecting for ${where} took longer than ${config.connectTimeoutMs} ms`, { cause: err })
    case 'UND_ERR_HEADERS_TIMEOUT':
      return new NimaError('NIMA_UPSTREAM_TIMEOUT', `${where} sent no response headers within ${config.headersTimeoutMs} ms`, { cause: err })
    case 'UND_ERR_BODY_TIMEOUT':
      return new NimaError('NIMA_UPSTREAM_TIMEOUT', `The body of ${where} did not arrive within ${config.bodyTimeoutMs} ms`, { cause: err })
    default:
      // Only the code: socket messages name internal addresses and ports.
      return new NimaError('NIMA_UPSTREAM_FAILED', `Fetching ${where} failed${code ? ` (${code})` : ''}`, { cause: err })
  }
}

/** A header value the cache may keep and send back: printable ASCII, bounded (anything else is ignored). */
const SAFE_VALIDATOR = /^[\x20-\x7e]{1,256}$/

function cachingHeaders(headers: Dispatcher.ResponseData['headers']): CachingHeaders {
  const etag = headerValue(headers, 'etag')
  const lastModified = headerValue(headers, 'last-modified')
  const cacheControl = headerValue(headers, 'cache-control')
  const age = Number(headerValue(headers, 'age'))
  return {
    ...(etag !== undefined && SAFE_VALIDATOR.test(etag) ? { etag } : {}),
    ...(lastModified !== undefined && SAFE_VALIDATOR.test(lastModified) ? { lastModified } : {}),
    ...(cacheControl !== undefined ? { cacheControl: cacheControl.slice(0, 1024) } : {}),
    ...(Number.isInteger(age) && age >= 0 ? { age } : {}),
  }
}

function conditionalHeaders(validators: Validators | undefined): Record<string, string> {
  if (!validators) return {}
  const { etag, lastModified } = validators
  return {
    ...(etag !== undefined && SAFE_VALIDATOR.test(etag) ? { 'if-none-match': etag } : {}),
    ...(lastModified !== undefined && SAFE_VALIDATOR.test(lastModified) ? { 'if-modified-since': lastModified } : {}),
  }
}

async function fetchWithState(state: FetcherState, rawUrl: string, signal: AbortSignal | undefined): Promise<FetchedImage>
async function fetchWithState(state: FetcherState, rawUrl: string, signal: AbortSignal | undefined, validators: Validators): Promise<FetchedImage | NotModified>
async function fetchWithState(state: FetcherState, rawUrl: string, signal: AbortSignal | undefined, validators?: Validators): Promise<FetchedImage | NotModified> {
  const { config } = state
  const conditional = conditionalHeaders(validators)
  const started = performance.now()
  signal?.throwIfAborted()

  let url = parseHopUrl(rawUrl)
  let redirects = 0
  let dnsMs: number | undefined

  try {
    for (;;) {
      const target = await checkTarget(state, url, signal)
      if (target.dnsMs !== undefined) dnsMs = (dnsMs ?? 0) + target.dnsMs

      const { response, remoteAddress } = await sendHop(state, url, target, signal, conditional)
      const status = response.statusCode
      const timings = () => ({ ...(dnsMs !== undefined ? { dnsMs } : {}), totalMs: performance.now() - started })

      if (REDIRECT_STATUSES.has(status)) {
        // Redirect bodies are not needed; dropping the connection is cheaper than
        // trusting an upstream to send a short one.
        discard(response.body)
        if (redirects >= config.maxRedirects) {
          throw new NimaError('NIMA_TOO_MANY_REDIRECTS', `${redactUrl(rawUrl)} redirected more than ${config.maxRedirects} times`)
        }
        const location = headerValue(response.headers, 'location')
        if (location === undefined || location === '') {
          throw new NimaError('NIMA_UPSTREAM_FAILED', `${redactUrl(url)} answered HTTP ${status} without a Location header`)
        }
        url = parseHopUrl(location, url)
        redirects += 1
        continue
      }

      // Only an answer to our own conditional request: a 304 to a plain GET is an upstream error.
      if (status === 304 && Object.keys(conditional).length > 0) {
        discard(response.body)
        return { notModified: true, finalUrl: url.href, caching: cachingHeaders(response.headers), redirects, timings: timings(), remoteAddress }
      }

      if (status < 200 || status > 299) {
        discard(response.body)
        throw new NimaError('NIMA_UPSTREAM_FAILED', `${redactUrl(url)} answered HTTP ${status}`)
      }

      const bytes = await readBody(config, url, response)
      const contentType = headerValue(response.headers, 'content-type')
      return {
        bytes,
        caching: cachingHeaders(response.headers),
        finalUrl: url.href,
        ...(contentType !== undefined ? { contentType } : {}),
        redirects,
        timings: timings(),
        remoteAddress,
      }
    }
  } catch (err) {
    // The caller's own abort (its deadline, a client that went away) is theirs to name.
    if (signal?.aborted) throw signal.reason
    throw toFetchError(err, url, config)
  }
}

/**
 * Builds a fetcher with one pooled undici dispatcher. Options are validated here and
 * a bad one throws a TypeError naming it.
 */
export function createImageFetcher(options: ImageFetcherOptions = {}): ImageFetcher {
  const state = createFetcherState(resolveConfig(options))
  let closed = false
  return {
    fetch(url, signal) {
      if (closed) return Promise.reject(new Error('image fetcher: fetch() after close()'))
      return fetchWithState(state, url, signal)
    },
    revalidate(url, validators, signal) {
      if (closed) return Promise.reject(new Error('image fetcher: fetch() after close()'))
      return fetchWithState(state, url, signal, validators)
    },
    async close() {
      if (closed) return
      closed = true
      await state.agent.close()
    },
  }
}

/**
 * One-shot fetch with its own dispatcher, closed afterwards. A service should hold one
 * {@link createImageFetcher} instead, so that connections are pooled.
 */
export async function fetchImage(url: string, options: FetchImageOptions = {}, signal?: AbortSignal): Promise<FetchedImage> {
  const fetcher = createImageFetcher(options)
  try {
    return await fetcher.fetch(url, signal)
  } finally {
    await fetcher.close()
  }
}
