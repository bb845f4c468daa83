import type { CachingHeaders } from './fetch-image.js'

/**
 * What an image URL's answer lets the score cache do (RFC 9111's freshness rules, read for
 * what is kept here: the URL's validators and the scores of its body, never the response,
 * never served to anyone else). no-store → remember nothing; s-maxage, else max-age, minus
 * Age → no request within it; no-cache → always revalidate. Expires and heuristic freshness
 * are not used: without max-age every use revalidates (a 304 is cheap). `private` is not a
 * refusal here, since no response is kept.
 *
 * Why not http-cache-semantics: it answers whether a cache may serve a stored *response*,
 * and no setting of it gives this rule. Compared on the same headers (its `storable()` and
 * `timeToLive()`, version 4.3): it agrees on no headers, no-store, max-age, Age, no-cache
 * and Vary, and differs on `private, max-age=600` (shared: not storable; ours: 600 s),
 * `max-age=600, s-maxage=30` (not shared: 600 s; ours: 30 s), `Expires` in 1 h (3,600 s;
 * ours: revalidate) and a year-old Last-Modified with no max-age (36.5 days of heuristic
 * freshness; ours: revalidate). Those four are choices made here (docs/cache.md), and the
 * library would also need the request and response objects and its own state in the URL record.
 */
export function cachePolicy(caching: CachingHeaders): { noStore: boolean; freshForMs: number } {
  const directives = new Map<string, string | undefined>()
  for (const part of (caching.cacheControl ?? '').split(',')) {
    const [name, value] = part.trim().split('=', 2) as [string, string | undefined]
    if (name !== '') directives.set(name.toLowerCase(), value?.replace(/^"|"$/g, ''))
  }
  if (directives.has('no-store')) return { noStore: true, freshForMs: 0 }
  if (directives.has('no-cache')) return { noStore: false, freshForMs: 0 }
  const seconds = Number(directives.get('s-maxage') ?? directives.get('max-age'))
  if (!Number.isInteger(seconds) || seconds <= 0) return { noStore: false, freshForMs: 0 }
  return { noStore: false, freshForMs: Math.max(0, seconds - (caching.age ?? 0)) * 1000 }
}
