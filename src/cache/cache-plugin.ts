import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { Config } from '../config/load.js'
import { MemoryLru } from './memory-lru.js'
import { RedisStore } from './redis-store.js'
import { TieredScoreCache, type CacheObserver } from './tiered-cache.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** The score cache; undefined when SCORE_CACHE=off. */
    scoreCache: TieredScoreCache | undefined
  }
}

export type ScoreCacheConfig = Pick<
  Config,
  'SCORE_CACHE' | 'SCORE_CACHE_MAX_BYTES' | 'CACHE_URL' | 'CACHE_TIMEOUT_MS' | 'CACHE_TTL_SECONDS' | 'CACHE_MAX_VALUE_BYTES' | 'CACHE_WARN_INTERVAL_MS'
>

/**
 * Opens the score cache the configuration asks for: none (SCORE_CACHE=off), in-process,
 * or in-process in front of Redis (CACHE_URL). Connecting to Redis never delays start-up
 * or requests: until it is ready, reads and writes bypass it.
 */
export function openScoreCache(config: ScoreCacheConfig, log: { warn(obj: object, msg: string): void }, observer: CacheObserver = {}): TieredScoreCache | undefined {
  if (config.SCORE_CACHE === 'off') return undefined
  const memory = config.SCORE_CACHE_MAX_BYTES > 0 ? new MemoryLru(config.SCORE_CACHE_MAX_BYTES) : undefined
  const redis =
    config.CACHE_URL !== ''
      ? new RedisStore({
          url: config.CACHE_URL,
          timeoutMs: config.CACHE_TIMEOUT_MS,
          ttlSeconds: config.CACHE_TTL_SECONDS,
          maxValueBytes: config.CACHE_MAX_VALUE_BYTES,
          warnIntervalMs: config.CACHE_WARN_INTERVAL_MS,
          log,
          ...(observer.bypass ? { onBypass: observer.bypass } : {}),
        })
      : undefined
  return new TieredScoreCache({ memory, redis }, observer)
}

/** What the log says of the cache: never the Redis password. */
function describe(config: ScoreCacheConfig): Record<string, unknown> {
  if (config.SCORE_CACHE === 'off') return { enabled: false }
  let redis: string | undefined
  if (config.CACHE_URL !== '') {
    const u = new URL(config.CACHE_URL)
    redis = `${u.protocol}//${u.host}${u.pathname}`
  }
  return { enabled: true, memoryMaxBytes: config.SCORE_CACHE_MAX_BYTES, ...(redis ? { redis, timeoutMs: config.CACHE_TIMEOUT_MS, ttlSeconds: config.CACHE_TTL_SECONDS } : {}) }
}

/** Decorates the app with `scoreCache` and closes it (Redis connection) when the app closes. */
export default fp(
  async function scoreCachePlugin(app: FastifyInstance, options: { config: ScoreCacheConfig; observer?: CacheObserver; cache?: TieredScoreCache | undefined }) {
    const owned = !('cache' in options)
    const cache = owned ? openScoreCache(options.config, app.log, options.observer) : options.cache
    app.decorate('scoreCache', cache)
    if (owned) app.log.info({ scoreCache: describe(options.config) }, 'score cache')
    if (owned && cache) app.addHook('onClose', () => cache.close())
  },
  { name: 'nima-score-cache', fastify: '5.x' },
)
