/**
 * Measurements against a running service that need no load generator: the latency
 * breakdown of lone requests, and what the service reports about execution providers.
 */
import type { SampleImage } from './images.js'
import { median, percentile, round } from './stats.js'

export interface SingleRequestBreakdown {
  requests: number
  /** Medians, ms. decode = sharp decode + sha256 + writeTensor (the response's timings.decodeMs). */
  decodeMs: number
  /** Both models, including each batcher's BATCH_MAX_WAIT_MS for a lone image. */
  inferenceMs: number
  /** Handler time as the service measured it (timings.totalMs). */
  serverTotalMs: number
  /** Request sent → response body parsed, measured by the client. */
  clientTotalMs: number
  /** client − server: HTTP parse, body read, JSON serialisation, response schema, loopback. */
  httpMs: number
  clientP95Ms: number
  clientP99Ms: number
  perImage: { name: string; clientMs: number; decodeMs: number; inferenceMs: number }[]
}

interface ScoreTimings {
  decodeMs: number
  inferenceMs: number
  totalMs: number
}

/** Sequential raw-body POST /score, each photo `rounds` times (after one unmeasured warm-up pass). */
export async function singleRequestBreakdown(baseUrl: string, images: readonly SampleImage[], rounds: number): Promise<SingleRequestBreakdown> {
  const post = async (img: SampleImage) => {
    const t0 = performance.now()
    const r = await fetch(`${baseUrl}/score`, { method: 'POST', headers: { 'content-type': 'image/jpeg' }, body: img.bytes })
    const body = (await r.json()) as { timings?: ScoreTimings; error?: { code: string } }
    const clientMs = performance.now() - t0
    if (r.status !== 200 || !body.timings) throw new Error(`POST /score ${img.name}: ${r.status} ${JSON.stringify(body.error)}`)
    return { clientMs, ...body.timings }
  }
  for (const img of images) await post(img)
  const rows: { name: string; clientMs: number; decodeMs: number; inferenceMs: number; totalMs: number }[] = []
  for (let k = 0; k < rounds; k++) for (const img of images) rows.push({ name: img.name, ...(await post(img)) })
  const col = (key: 'clientMs' | 'decodeMs' | 'inferenceMs' | 'totalMs') => rows.map((r) => r[key])
  const client = [...col('clientMs')].sort((a, b) => a - b)
  const http = rows.map((r) => r.clientMs - r.totalMs)
  return {
    requests: rows.length,
    decodeMs: round(median(col('decodeMs')), 2),
    inferenceMs: round(median(col('inferenceMs')), 2),
    serverTotalMs: round(median(col('totalMs')), 2),
    clientTotalMs: round(median(client), 2),
    httpMs: round(median(http), 2),
    clientP95Ms: round(percentile(client, 95), 2),
    clientP99Ms: round(percentile(client, 99), 2),
    perImage: images.map((img) => {
      const mine = rows.filter((r) => r.name === img.name)
      return {
        name: img.name,
        clientMs: round(median(mine.map((r) => r.clientMs)), 1),
        decodeMs: round(median(mine.map((r) => r.decodeMs)), 1),
        inferenceMs: round(median(mine.map((r) => r.inferenceMs)), 1),
      }
    }),
  }
}

export interface ProviderReport {
  requested: string
  /** Per model: the provider in use and the providers that failed, from GET /models. */
  models: { id: string; provider: string; fallbacks: { provider: string; error: string }[] }[]
  /** nima_execution_provider_fallbacks_total series from GET /metrics. */
  fallbackMetric: string[]
  /** The service's own warning lines about unavailable providers. */
  warnings: string[]
  /** A /score still works on the fallback provider. */
  scoreStatus: number
}

export async function providerReport(baseUrl: string, requested: string, logText: string, image: SampleImage): Promise<ProviderReport> {
  const models = (await (await fetch(`${baseUrl}/models`)).json()) as {
    models: { id: string; provider: string; fallbacks: { provider: string; error: string }[] }[]
  }
  const metrics = await (await fetch(`${baseUrl}/metrics`)).text()
  const score = await fetch(`${baseUrl}/score`, { method: 'POST', headers: { 'content-type': 'image/jpeg' }, body: image.bytes })
  await score.arrayBuffer()
  const warnings = logText
    .split('\n')
    .filter((l) => l.includes('execution provider unavailable'))
    .map((l) => {
      try {
        const j = JSON.parse(l) as { model?: string; provider?: string; error?: string; msg?: string }
        return `${j.msg} model=${j.model} provider=${j.provider}: ${j.error}`
      } catch {
        return l
      }
    })
  return {
    requested,
    models: models.models.map((m) => ({ id: m.id, provider: m.provider, fallbacks: m.fallbacks })),
    fallbackMetric: metrics.split('\n').filter((l) => l.startsWith('nima_execution_provider_fallbacks_total')),
    warnings,
    scoreStatus: score.status,
  }
}

/**
 * Waits until the service has nothing in flight (nima_inflight_requests 0). autocannon
 * closes its connections at the end of a level, but requests already read keep being
 * scored: without this the next level would start on a busy server. Returns the wait, ms.
 */
export async function waitIdle(baseUrl: string, timeoutMs = 120_000): Promise<number> {
  const started = performance.now()
  while (performance.now() - started < timeoutMs) {
    const text = await (await fetch(`${baseUrl}/metrics`)).text()
    const m = /^nima_inflight_requests(?:\{[^}]*\})? (\S+)$/m.exec(text)
    if (!m || Number(m[1]) === 0) return performance.now() - started
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error(`service still busy after ${timeoutMs} ms`)
}

/** The main isolate's garbage collections so far, from the service's own /metrics (prom-client's nodejs_gc_duration_seconds). */
export interface GcTotals {
  /** Full (mark-compact) collections. */
  major: number
  /** Young-generation collections (scavenges). */
  minor: number
  /** Pause seconds of all kinds together. */
  seconds: number
}

export async function gcTotals(baseUrl: string): Promise<GcTotals> {
  const text = await (await fetch(`${baseUrl}/metrics`)).text()
  const read = (suffix: 'count' | 'sum', kind?: string) => {
    let total = 0
    for (const m of text.matchAll(new RegExp(`^nima_nodejs_gc_duration_seconds_${suffix}\\{kind="(\\w+)"\\} ([\\d.e+-]+)$`, 'gm'))) {
      if (kind === undefined || m[1] === kind) total += Number(m[2])
    }
    return total
  }
  return { major: read('count', 'major'), minor: read('count', 'minor'), seconds: read('sum') }
}
