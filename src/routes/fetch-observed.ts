import { isNimaError } from '../errors.js'
import type { RouteContext } from './context.js'

/** A URL fetch under the per-host limit, with its latency and size recorded. */
export async function fetchObserved(ctx: RouteContext, url: string, signal: AbortSignal): Promise<{ bytes: Buffer; fetchMs: number }> {
  const started = performance.now()
  try {
    const { bytes } = await ctx.limitHost(url, () => ctx.fetchImage(url, signal), signal)
    const fetchMs = performance.now() - started
    ctx.metrics.fetchDuration.observe({ outcome: 'ok' }, fetchMs / 1000)
    ctx.metrics.fetchBytes.observe(bytes.length)
    return { bytes, fetchMs }
  } catch (err) {
    ctx.metrics.fetchDuration.observe({ outcome: isNimaError(err) ? err.code : 'error' }, (performance.now() - started) / 1000)
    throw err
  }
}
