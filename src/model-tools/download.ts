import { createWriteStream } from 'node:fs'
import { readFile, rename, rm } from 'node:fs/promises'
import { Transform } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { setTimeout as sleep } from 'node:timers/promises'
import { Agent, interceptors, request, type Dispatcher } from 'undici'
import { gitBlobSha1, sha256Hex } from '../models/integrity.js'
import { ModelError } from '../models/model-error.js'

/** Where download progress goes; the CLI draws a bar on a TTY and logs lines otherwise. */
export interface ProgressReporter {
  start(label: string, totalBytes: number | undefined): void
  update(receivedBytes: number): void
  stop(): void
}

export interface DownloadOptions {
  /** Tries in all, first included. Default 4. */
  attempts?: number
  /** Wait before the first retry; doubles after each. Default 1000 ms. */
  backoffMs?: number
  headersTimeoutMs?: number
  bodyTimeoutMs?: number
  /** Refuse bodies larger than this (the idealo files are about 13 MB). Default 256 MiB. */
  maxBytes?: number
  progress?: ProgressReporter
  log?: (line: string) => void
  /** For tests and proxies; by default an Agent that follows up to 3 redirects. */
  dispatcher?: Dispatcher
}

export interface DownloadTarget {
  url: string
  fileName: string
  /** Expected sha1("blob <size>\0" + content). */
  gitBlobSha1: string
}

export interface DownloadResult {
  path: string
  bytes: number
  gitBlobSha1: string
  sha256: string
}

/** Codes that mean the host could not be reached at all, i.e. most likely offline. */
const UNREACHABLE = new Set(['ENOTFOUND', 'EAI_AGAIN', 'ECONNREFUSED', 'ENETUNREACH', 'EHOSTUNREACH', 'ETIMEDOUT', 'UND_ERR_CONNECT_TIMEOUT'])

type Failure =
  | { kind: 'network'; code: string; detail: string }
  | { kind: 'http'; status: number }
  | { kind: 'integrity'; actual: string; bytes: number }

class AttemptFailed extends Error {
  constructor(readonly failure: Failure) {
    super(failure.kind)
  }
}

function describe(failure: Failure): string {
  if (failure.kind === 'network') return failure.code
  if (failure.kind === 'http') return `HTTP ${failure.status}`
  return `integrity check failed (git blob sha1 ${failure.actual})`
}

function errorCode(err: unknown): string {
  const e = err as { code?: unknown; cause?: { code?: unknown } }
  if (typeof e.code === 'string') return e.code
  if (typeof e.cause?.code === 'string') return e.cause.code
  return err instanceof Error ? err.name : 'unknown error'
}

async function attempt(target: DownloadTarget, partial: string, options: DownloadOptions, dispatcher: Dispatcher): Promise<DownloadResult> {
  let response: Dispatcher.ResponseData
  try {
    response = await request(target.url, {
      dispatcher,
      headersTimeout: options.headersTimeoutMs ?? 30_000,
      bodyTimeout: options.bodyTimeoutMs ?? 60_000,
      headers: { 'user-agent': 'nima-serve models pull' },
    })
  } catch (err) {
    throw new AttemptFailed({ kind: 'network', code: errorCode(err), detail: err instanceof Error ? err.message : String(err) })
  }
  const { statusCode, headers, body } = response
  if (statusCode < 200 || statusCode > 299) {
    await body.dump()
    throw new AttemptFailed({ kind: 'http', status: statusCode })
  }

  const maxBytes = options.maxBytes ?? 256 * 1024 * 1024
  const length = Number(headers['content-length'])
  const total = Number.isFinite(length) && length > 0 ? length : undefined
  let received = 0
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      received += chunk.length
      if (received > maxBytes) return done(new RangeError(`body larger than ${maxBytes} bytes`))
      options.progress?.update(received)
      done(null, chunk)
    },
  })
  options.progress?.start(target.fileName, total)
  try {
    await pipeline(body, counter, createWriteStream(partial))
  } catch (err) {
    await rm(partial, { force: true })
    throw new AttemptFailed({ kind: 'network', code: errorCode(err), detail: err instanceof Error ? err.message : String(err) })
  } finally {
    options.progress?.stop()
  }

  const content = await readFile(partial)
  const actual = gitBlobSha1(content)
  if (actual !== target.gitBlobSha1) {
    // A corrupt file must never be mistaken for the real one later: delete it now.
    await rm(partial, { force: true })
    throw new AttemptFailed({ kind: 'integrity', actual, bytes: content.byteLength })
  }
  return { path: partial, bytes: content.byteLength, gitBlobSha1: actual, sha256: sha256Hex(content) }
}

function finalError(target: DownloadTarget, failure: Failure, attempts: number): ModelError {
  const tries = `${attempts} attempt${attempts === 1 ? '' : 's'}`
  if (failure.kind === 'network' && UNREACHABLE.has(failure.code)) {
    const host = new URL(target.url).host
    return new ModelError(
      'MODEL_OFFLINE',
      `cannot reach ${host} (${failure.code}) after ${tries}: are you offline? ` +
        `To install weights fetched another way: nima-serve models pull --from <dir>`,
    )
  }
  if (failure.kind === 'integrity') {
    return new ModelError(
      'MODEL_INTEGRITY_FAILED',
      `${target.fileName} from ${target.url} failed its integrity check after ${tries}: ` +
        `expected git blob sha1 ${target.gitBlobSha1}, got ${failure.actual} (${failure.bytes} bytes); the file was deleted`,
    )
  }
  const detail = failure.kind === 'http' ? `the server answered HTTP ${failure.status}` : `${failure.code}: ${failure.detail}`
  return new ModelError('MODEL_DOWNLOAD_FAILED', `downloading ${target.url} failed after ${tries}: ${detail}`)
}

function retryable(failure: Failure): boolean {
  if (failure.kind !== 'http') return true
  return failure.status >= 500 || failure.status === 429 || failure.status === 408
}

/**
 * Downloads `target.url` to `destPath`, retrying network errors, 5xx answers and corrupt
 * transfers with exponential backoff. The file only appears at destPath once its git
 * blob sha1 matches the pinned one; a mismatching file is deleted.
 */
export async function downloadVerified(target: DownloadTarget, destPath: string, options: DownloadOptions = {}): Promise<DownloadResult> {
  const attempts = options.attempts ?? 4
  const backoffMs = options.backoffMs ?? 1000
  const own = options.dispatcher === undefined ? new Agent().compose(interceptors.redirect({ maxRedirections: 3 })) : undefined
  const dispatcher = options.dispatcher ?? own!
  const partial = `${destPath}.partial`
  try {
    for (let n = 1; ; n++) {
      try {
        const result = await attempt(target, partial, options, dispatcher)
        await rename(partial, destPath)
        return { ...result, path: destPath }
      } catch (err) {
        if (!(err instanceof AttemptFailed)) throw err
        if (n >= attempts || !retryable(err.failure)) throw finalError(target, err.failure, n)
        const wait = backoffMs * 2 ** (n - 1)
        options.log?.(`${target.fileName}: attempt ${n}/${attempts} failed (${describe(err.failure)}); retrying in ${(wait / 1000).toFixed(1)} s`)
        await sleep(wait)
      }
    }
  } finally {
    await own?.close()
  }
}
