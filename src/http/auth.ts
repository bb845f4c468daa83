import { createHash, timingSafeEqual } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { NimaError } from '../errors.js'

declare module 'fastify' {
  interface FastifyContextConfig {
    /** Reachable without an API key (probes, metrics). */
    public?: boolean
  }
}

/**
 * Optional bearer-token check. Keys are compared as SHA-256 digests with
 * timingSafeEqual, so neither the key's content nor its length leaks through timing.
 */
export function keyMatcher(keys: readonly string[]): (candidate: string) => boolean {
  const digests = keys.map((k) => createHash('sha256').update(k).digest())
  return (candidate) => {
    const d = createHash('sha256').update(candidate).digest()
    let ok = false
    for (const k of digests) ok = timingSafeEqual(k, d) || ok // no early exit
    return ok
  }
}

export default fp(
  async function apiKeys(app: FastifyInstance, { keys }: { keys: readonly string[] }) {
    if (keys.length === 0) return
    const matches = keyMatcher(keys)
    app.addHook('onRequest', async (request) => {
      if (request.routeOptions.config.public) return
      const header = request.headers.authorization
      const token = typeof header === 'string' && /^Bearer /i.test(header) ? header.slice(7).trim() : ''
      if (!token || !matches(token)) {
        throw new NimaError('NIMA_UNAUTHORIZED', token ? 'the API key is not valid' : 'send an API key as "Authorization: Bearer <key>"', {
          headers: { 'www-authenticate': 'Bearer' },
        })
      }
    })
  },
  { name: 'nima-api-keys', fastify: '5.x' },
)
