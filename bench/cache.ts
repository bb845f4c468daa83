/**
 * The score cache's figures: cold against warm POST /rank of one hotel's 50 photo URLs,
 * served by a local upstream that sends ETags and counts what it sends.
 *
 *   npx tsx bench/cache.ts [--images 50] [--rounds 3] [--server tsx|dist]
 *
 * Rows, each `--rounds` times (a cold row on fresh services, so nothing is cached):
 * - cache off: SCORE_CACHE=off, the same /rank twice (both download, decode and infer);
 * - one instance (in-process cache): cold, then warm (the upstream answers 304s);
 * - one instance, upstream max-age=600: warm with no request to the upstream at all;
 * - two instances sharing a redis-server: cold on A, then the first /rank on B (B's memory
 *   is empty; URL records and scores come from Redis, the upstream answers 304s).
 * Each row: wall time of the /rank, images per second, upstream bodies, 304s and bytes.
 * Timings on a shared machine are noisy: compare rows of one run, not runs.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import sharp from 'sharp'
import { testModelsDir } from '../test/helpers/models.js'
import { samplePhotos } from '../test/helpers/paths.js'
import { redisMissing, startRedis } from '../test/helpers/redis.js'
import { mdTable, print, uptime } from './lib/report.js'
import { median, round } from './lib/stats.js'
import { buildDist, projectRoot, startService, type RunningService } from './lib/server.js'

const { values: args } = parseArgs({
  options: {
    images: { type: 'string', default: '50' },
    rounds: { type: 'string', default: '3' },
    server: { type: 'string', default: 'tsx' },
  },
})
const N = Number(args.images)
const rounds = Number(args.rounds)

// 50 distinct photos: the samples, each cropped differently (so every one has its own
// sha256 and is scored on its own), re-encoded as JPEG at quality 85.
const sources = samplePhotos()
async function makePhotos(n: number): Promise<Buffer[]> {
  const out: Buffer[] = []
  for (let i = 0; i < n; i++) {
    const img = sharp(sources[i % sources.length]!)
    const { width = 512, height = 512 } = await img.metadata()
    const k = Math.floor(i / sources.length)
    const cut = Math.min(0.3, 0.05 * (k + 1))
    out.push(
      await img
        .extract({ left: Math.floor(width * cut), top: Math.floor(height * cut), width: Math.floor(width * (1 - cut)), height: Math.floor(height * (1 - cut)) })
        .resize({ width: Math.min(1600, Math.floor(width * (1 - cut))) })
        .jpeg({ quality: 85 })
        .toBuffer(),
    )
  }
  return out
}

interface UpstreamCounts {
  bodies: number
  notModified: number
  bytes: number
}

async function startUpstream(photos: Buffer[], maxAge: boolean): Promise<{ url: string; counts: UpstreamCounts; close(): Promise<void> }> {
  const counts: UpstreamCounts = { bodies: 0, notModified: 0, bytes: 0 }
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const i = Number(/^\/p\/(\d+)\.jpg$/.exec(req.url ?? '')?.[1] ?? -1)
    const body = photos[i]
    if (!body) return void res.writeHead(404).end()
    const etag = `"p${i}"`
    const headers = { etag, ...(maxAge ? { 'cache-control': 'max-age=600' } : {}) }
    if (req.headers['if-none-match'] === etag) {
      counts.notModified += 1
      return void res.writeHead(304, headers).end()
    }
    counts.bodies += 1
    counts.bytes += body.length
    res.writeHead(200, { 'content-type': 'image/jpeg', 'content-length': body.length, ...headers }).end(body)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    counts,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections()
        server.close(() => r())
      }),
  }
}

interface Measure {
  ms: number
  /** Redis operations given up during the /rank (timeouts under load included). */
  bypasses: number
  bodies: number
  notModified: number
  bytes: number
  cache: Record<string, number>
}

async function bypasses(svc: RunningService): Promise<number> {
  const text = await (await fetch(`${svc.baseUrl}/metrics`)).text()
  return text
    .split('\n')
    .filter((l) => l.startsWith('nima_cache_bypasses_total{'))
    .reduce((a, l) => a + Number(l.split(' ').at(-1)), 0)
}

async function rank(svc: RunningService, upstream: { url: string; counts: UpstreamCounts }): Promise<Measure> {
  const before = { ...upstream.counts }
  const bypassedBefore = await bypasses(svc)
  const started = performance.now()
  const r = await fetch(`${svc.baseUrl}/rank`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ images: Array.from({ length: N }, (_, i) => ({ url: `${upstream.url}/p/${i}.jpg` })), nearDuplicates: { enabled: false } }),
  })
  const body = (await r.json()) as { ranked?: { cache: { result: string; upstream?: string }; duplicates: unknown[] }[]; failed?: unknown[] }
  const ms = performance.now() - started
  const answered = body.ranked?.reduce((a, e) => a + 1 + e.duplicates.length, 0)
  if (r.status !== 200 || (body.failed?.length ?? 0) > 0 || answered !== N) throw new Error(`rank: ${r.status} ${answered} ranked, ${JSON.stringify(body.failed).slice(0, 500)}`)
  const cache: Record<string, number> = {}
  for (const e of body.ranked!) {
    const k = `${e.cache.result}${e.cache.upstream ? `/${e.cache.upstream}` : ''}`
    cache[k] = (cache[k] ?? 0) + 1
  }
  const c = upstream.counts
  return { ms, bypasses: (await bypasses(svc)) - bypassedBefore, bodies: c.bodies - before.bodies, notModified: c.notModified - before.notModified, bytes: c.bytes - before.bytes, cache }
}

const modelsDir = await testModelsDir()
const entry = (args.server === 'dist' ? buildDist((m) => print(m)) : undefined) ?? 'tsx'
let services = 0
async function service(env: Record<string, string>): Promise<RunningService> {
  return startService({ entry, modelsDir, env: { URL_ALLOWLIST: '127.0.0.1', ...env }, logFile: join(projectRoot, 'bench', 'results', `cache-${services++}.log`) })
}

const photos = await makePhotos(N)
const totalBytes = photos.reduce((a, b) => a + b.length, 0)
const results = new Map<string, Measure[]>()
const record = (row: string, m: Measure) => results.set(row, [...(results.get(row) ?? []), m])

print(`# bench/cache.ts — ${new Date().toISOString()}\n\n${uptime()}`)
print(`${N} distinct JPEGs (${round(totalBytes / 1024 / 1024, 2)} MiB in all) from ${sources.length} samples; ${rounds} round(s); service ${entry === 'tsx' ? 'src through tsx' : entry}`)

/** Two /rank calls of the hotel on one fresh instance; `first` undefined: the first is only a warm-up. */
async function rankTwice(scoreCache: 'on' | 'off', maxAge: boolean, first: string | undefined, second: string): Promise<void> {
  const up = await startUpstream(photos, maxAge)
  const svc = await service({ SCORE_CACHE: scoreCache })
  try {
    const m = await rank(svc, up)
    if (first) record(first, m)
    record(second, await rank(svc, up))
  } finally {
    await svc.stop()
    await up.close()
  }
}

const redisWhy = redisMissing()
for (let round_ = 0; round_ < rounds; round_++) {
  await rankTwice('off', false, 'cache off, 1st /rank', 'cache off, 2nd /rank')
  await rankTwice('on', false, 'one instance: cold', 'one instance: warm (304s)')
  await rankTwice('on', true, undefined, 'one instance: warm, max-age (no request)')
  if (!redisWhy) {
    const redis = await startRedis()
    const up = await startUpstream(photos, false)
    const a = await service({ SCORE_CACHE: 'on', CACHE_URL: redis.url })
    const b = await service({ SCORE_CACHE: 'on', CACHE_URL: redis.url })
    record('two instances + Redis: cold on A', await rank(a, up))
    await new Promise((r) => setTimeout(r, 200))
    record('two instances + Redis: then B (memory empty)', await rank(b, up))
    await a.stop()
    await b.stop()
    await up.close()
    await redis.stop()
  }
}
if (redisWhy) print(`two instances + Redis: skipped (${redisWhy})`)

const rows = [...results].map(([row, ms]) => {
  const t = median(ms.map((m) => m.ms))
  const last = ms.at(-1)!
  return [
    row,
    round(t, 0),
    round((N / t) * 1000, 1),
    last.bodies,
    last.notModified,
    round(last.bytes / 1024, 0),
    last.bypasses,
    Object.entries(last.cache)
      .map(([k, v]) => `${v} ${k}`)
      .join(', '),
  ]
})
print('\n' + mdTable(['/rank of 50 URLs', 'median ms', 'images/s', 'upstream bodies', 'upstream 304s', 'upstream KiB', 'Redis bypasses', 'cache (last round)'], rows))
print(`\nTimes: median of ${rounds} round(s), ${ms(results)}. The other columns: the last round. The machine is shared: compare rows of one run.`)
print('Redis bypasses: operations given up at CACHE_TIMEOUT_MS (50 ms); on a saturated machine the event loop of a busy instance delays replies too, and a bypassed read is a miss.')

function ms(r: Map<string, Measure[]>): string {
  return [...r].map(([row, m]) => `${row}: ${m.map((x) => round(x.ms, 0)).join('/')}`).join('; ')
}
