/**
 * The shared layer of the score cache: string values in Redis, through ioredis, under
 * one rule: **Redis can never fail or slow a request.** Every operation is either answered
 * within `timeoutMs` or bypassed (the caller carries on as if the entries were missing,
 * or as if the write had not been asked for), and each bypass is reported with its reason.
 *
 * - Down (connecting, reconnecting, closed): nothing is sent; ioredis's offline queue is
 *   disabled, so no command waits for a connection that may never come back.
 * - Stalled (the connection is up, nothing answers): each read waits `timeoutMs` at most;
 *   once `maxPending` commands are outstanding on the connection, further ones are not
 *   sent at all, so a stalled server cannot make the client queue without bound.
 * - Errors and oversized values: bypassed. Values above `maxValueBytes` are neither
 *   written nor trusted when read.
 *
 * Writes are not awaited by requests. Every key gets `ttlSeconds` so the shared cache
 * cleans itself even without an eviction policy on the server (the manifests set one too).
 */
import { Redis } from 'ioredis'

export type BypassReason = 'unavailable' | 'timeout' | 'error' | 'busy' | 'too_large'
export const BYPASS_REASONS: readonly BypassReason[] = ['unavailable', 'timeout', 'error', 'busy', 'too_large']

export interface WarnLogger {
  warn(obj: object, msg: string): void
}

export interface RedisStoreOptions {
  /** redis://[user:password@]host:port[/db] or rediss:// */
  url: string
  /** Longest one operation may take before it is bypassed. */
  timeoutMs: number
  ttlSeconds: number
  maxValueBytes: number
  /** Commands outstanding on the connection past which new ones are bypassed ('busy'). Default 1000. */
  maxPending?: number
  /** At most one warning per this many ms, with the bypasses counted since the last one. */
  warnIntervalMs: number
  log: WarnLogger
  onBypass?: (reason: BypassReason) => void
  /** Prefix of every key, so the service can share a Redis with others. Default 'nima:'. */
  keyPrefix?: string
}

class Timeout extends Error {}

export class RedisStore {
  readonly #client: Redis
  readonly #o: Required<Omit<RedisStoreOptions, 'onBypass'>> & Pick<RedisStoreOptions, 'onBypass'>
  #lastWarn = Number.NEGATIVE_INFINITY
  #unwarned = 0
  #closed = false

  constructor(options: RedisStoreOptions) {
    this.#o = { maxPending: 1000, keyPrefix: 'nima:', ...options }
    const o = this.#o
    this.#client = new Redis(o.url, {
      keyPrefix: o.keyPrefix,
      enableOfflineQueue: false,
      // A command cut off by a lost connection fails at once instead of waiting for the next one.
      maxRetriesPerRequest: 0,
      commandTimeout: o.timeoutMs,
      connectTimeout: Math.max(1000, o.timeoutMs),
      // Reconnect for ever, at most every 2 s: requests bypass meanwhile, and the first
      // command after a reconnect finds the cache again.
      retryStrategy: (times) => Math.min(100 * times, 2000),
      lazyConnect: false,
    })
    this.#client.on('error', (err: Error) => this.#warn('error', err))
  }

  /** 'ready' when commands are sent; anything else bypasses. */
  get status(): string {
    return this.#client.status
  }

  /** Commands sent and not yet answered. */
  get pending(): number {
    return this.#client.commandQueue.length
  }

  /** The values of `keys` (undefined where missing), or undefined when the read was bypassed. */
  async getMany(keys: readonly string[]): Promise<(string | undefined)[] | undefined> {
    if (keys.length === 0) return []
    const values = await this.#run('read', () => this.#client.mget(...keys))
    if (values === undefined) return undefined
    return values.map((v) => {
      if (v === null) return undefined
      if (Buffer.byteLength(v) > this.#o.maxValueBytes) {
        this.#bypass('too_large')
        return undefined
      }
      return v
    })
  }

  /** Writes `entries` with the TTL; not awaited by requests (the promise never rejects). */
  async setMany(entries: ReadonlyArray<readonly [string, string]>): Promise<void> {
    const fitting = entries.filter(([, v]) => {
      if (Buffer.byteLength(v) <= this.#o.maxValueBytes) return true
      this.#bypass('too_large')
      return false
    })
    if (fitting.length === 0) return
    await this.#run('write', () => {
      const p = this.#client.pipeline()
      for (const [k, v] of fitting) p.set(k, v, 'EX', this.#o.ttlSeconds)
      return p.exec()
    })
  }

  async delete(keys: readonly string[]): Promise<void> {
    if (keys.length > 0) await this.#run('delete', () => this.#client.del(...keys))
  }

  /** Lets pending writes finish (for at most one timeout), then disconnects. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    if (this.#client.status === 'ready') {
      await this.#withTimeout(this.#client.quit()).catch(() => {})
    }
    this.#client.disconnect()
  }

  /** Runs `op` within the timeout; undefined (and a bypass reported) when it cannot. */
  async #run<T>(what: string, op: () => Promise<T>): Promise<T | undefined> {
    if (this.#closed || this.#client.status !== 'ready') {
      this.#bypass('unavailable')
      return undefined
    }
    if (this.pending >= this.#o.maxPending) {
      this.#bypass('busy', `${this.pending} commands outstanding`)
      return undefined
    }
    try {
      return await this.#withTimeout(op())
    } catch (err) {
      const reason = err instanceof Timeout || (err as Error)?.message === 'Command timed out' ? 'timeout' : 'error'
      this.#bypass(reason, err, what)
      return undefined
    }
  }

  #withTimeout<T>(work: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Timeout(`no answer from Redis within ${this.#o.timeoutMs} ms`)), this.#o.timeoutMs)
    })
    // The losing side must not surface as an unhandled rejection.
    work.catch(() => {})
    return Promise.race([work, timeout]).finally(() => clearTimeout(timer))
  }

  #bypass(reason: BypassReason, detail?: unknown, what?: string): void {
    this.#o.onBypass?.(reason)
    this.#warn(reason, detail, what)
  }

  /** One warning per interval at most, however many bypasses there were. */
  #warn(reason: string, detail?: unknown, what?: string): void {
    this.#unwarned += 1
    const now = Date.now()
    if (now - this.#lastWarn < this.#o.warnIntervalMs) return
    this.#lastWarn = now
    const err = detail instanceof Error ? { message: detail.message, name: detail.name } : detail
    this.#o.log.warn(
      { reason, ...(what ? { op: what } : {}), ...(err !== undefined ? { err } : {}), status: this.#client.status, eventsSinceLastWarning: this.#unwarned },
      'score cache: Redis bypassed, requests go on without it',
    )
    this.#unwarned = 0
  }
}
