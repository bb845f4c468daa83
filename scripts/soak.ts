/**
 * Soak: drives the real service (a child process on 127.0.0.1) at saturation with a mix
 * of good and bad requests, then prints requests by status, latency percentiles and the
 * server's RSS at start, after warm-up and at the end.
 *
 * The score cache is off (SCORE_CACHE=off) unless `env` turns it on: the soak sends the same
 * twenty photos again and again, and it is the decode and inference pipeline under
 * saturation that it measures, not cache hits.
 *
 *   npm run soak -- --minutes 10      (or --seconds N; --concurrency C; --json out.json)
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { readFileSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { parseArgs } from 'node:util'
import { pathToFileURL } from 'node:url'
import { testModelsDir } from '../test/helpers/models.js'
import { projectRoot, samplePhotos } from '../test/helpers/paths.js'

export interface SoakOptions {
  seconds: number
  concurrency: number
  warmupSeconds?: number
  env?: Record<string, string>
  log?: (line: string) => void
}

export interface SoakResult {
  seconds: number
  /** SCORE_CACHE of the service soaked ('off' unless the options' env turned it on). */
  scoreCache: string
  concurrency: number
  requests: number
  byStatus: Record<string, number>
  byKind: Record<string, Record<string, number>>
  unexpected5xx: number
  latencyMs: { p50: number; p90: number; p99: number; max: number }
  rssMb: { start: number; afterWarmup: number; end: number; peak: number }
  rssGrowthAfterWarmupPct: number
  throughputPerSec: number
  healthyAtEnd: boolean
}

function rssOf(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024
}

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0

async function startServiceProcess(env: Record<string, string>): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: projectRoot,
    env: { ...process.env, HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'warn', MODELS_DIR: await testModelsDir(), SCORE_CACHE: 'off', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  let url = ''
  await new Promise<void>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`service exited with ${code}`)))
    const poll = setInterval(async () => {
      if (!url) return
      try {
        if ((await fetch(url + '/readyz')).ok) {
          clearInterval(poll)
          resolve()
        }
      } catch {
        /* not up yet */
      }
    }, 100)
    // LOG_LEVEL=warn hides the listen line; ask the OS which port the child bound instead.
    const find = setInterval(() => {
      try {
        const inodes = new Set<string>()
        for (const fd of readdirSync(`/proc/${child.pid}/fd`)) {
          const link = readlinkSync(`/proc/${child.pid}/fd/${fd}`)
          const m = /^socket:\[(\d+)\]$/.exec(link)
          if (m) inodes.add(m[1]!)
        }
        for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
          const cols = line.trim().split(/\s+/)
          if (cols[3] === '0A' && inodes.has(cols[9]!)) {
            url = `http://127.0.0.1:${parseInt(cols[1]!.split(':')[1]!, 16)}`
            clearInterval(find)
          }
        }
      } catch {
        /* process still starting */
      }
    }, 100)
  })
  return { child, url }
}

export async function soak(options: SoakOptions): Promise<SoakResult> {
  const log = options.log ?? ((l: string) => process.stdout.write(l + '\n'))
  const photos = samplePhotos().filter((p) => /\.(jpe?g|png)$/.test(p))
  const bodies = photos.map((p) => readFileSync(p))
  const upstream = createServer((req, res) => {
    const i = Number(new URL(req.url!, 'http://x').searchParams.get('i') ?? 0)
    res.writeHead(200).end(bodies[i % bodies.length])
  })
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r))
  const upUrl = `http://127.0.0.1:${(upstream.address() as AddressInfo).port}`
  const { child, url } = await startServiceProcess({ URL_ALLOWLIST: '127.0.0.1', ...options.env })
  const pid = child.pid!
  const rssStart = rssOf(pid)
  let rssPeak = rssStart
  let rssAfterWarmup = 0
  const warmupMs = (options.warmupSeconds ?? Math.max(5, options.seconds * 0.15)) * 1000
  const started = performance.now()
  const deadline = started + options.seconds * 1000
  const byStatus: Record<string, number> = {}
  const byKind: Record<string, Record<string, number>> = {}
  const latencies: number[] = []
  let unexpected5xx = 0
  let n = 0
  const sampler = setInterval(() => {
    const rss = rssOf(pid)
    rssPeak = Math.max(rssPeak, rss)
    if (!rssAfterWarmup && performance.now() - started >= warmupMs) rssAfterWarmup = rss
  }, 500)

  const kinds: { kind: string; weight: number; make: (i: number) => { path: string; init: RequestInit } }[] = [
    { kind: 'upload', weight: 60, make: (i) => ({ path: '/score', init: { method: 'POST', body: bodies[i % bodies.length], headers: { 'content-type': 'application/octet-stream' } } }) },
    { kind: 'url', weight: 10, make: (i) => ({ path: '/score', init: { method: 'POST', body: JSON.stringify({ url: `${upUrl}/img?i=${i}` }), headers: { 'content-type': 'application/json' } } }) },
    { kind: 'rank', weight: 5, make: (i) => ({ path: '/rank', init: { method: 'POST', body: JSON.stringify({ images: [0, 1, 2, 3].map((k) => ({ url: `${upUrl}/img?i=${i + k}` })) }), headers: { 'content-type': 'application/json' } } }) },
    { kind: 'garbage', weight: 10, make: (i) => ({ path: '/score', init: { method: 'POST', body: Buffer.alloc(2000 + (i % 100), i % 251), headers: { 'content-type': 'image/jpeg' } } }) },
    { kind: 'truncated', weight: 10, make: (i) => ({ path: '/score', init: { method: 'POST', body: bodies[i % bodies.length]!.subarray(0, 3000), headers: { 'content-type': 'image/jpeg' } } }) },
    { kind: 'blocked-url', weight: 5, make: () => ({ path: '/score', init: { method: 'POST', body: JSON.stringify({ url: 'http://169.254.169.254/latest/meta-data/' }), headers: { 'content-type': 'application/json' } } }) },
  ]
  const totalWeight = kinds.reduce((a, k) => a + k.weight, 0)
  const pick = (i: number) => {
    let r = (i * 7919) % totalWeight
    for (const k of kinds) if ((r -= k.weight) < 0) return k
    return kinds[0]!
  }

  const worker = async () => {
    while (performance.now() < deadline) {
      const i = n++
      const k = pick(i)
      const { path, init } = k.make(i)
      const t0 = performance.now()
      let status = 'error'
      try {
        const res = await fetch(url + path, init)
        await res.arrayBuffer()
        status = String(res.status)
      } catch (err) {
        status = `error:${(err as Error).message}`
      }
      latencies.push(performance.now() - t0)
      byStatus[status] = (byStatus[status] ?? 0) + 1
      const kk = (byKind[k.kind] ??= {})
      kk[status] = (kk[status] ?? 0) + 1
      if (status.startsWith('5') && status !== '503') unexpected5xx++
      if (status.startsWith('error')) unexpected5xx++
    }
  }
  const progress = setInterval(() => log(`  ${((performance.now() - started) / 1000).toFixed(0)} s: ${n} requests, RSS ${rssOf(pid).toFixed(0)} MB`), 30_000)
  await Promise.all(Array.from({ length: options.concurrency }, worker))
  clearInterval(progress)
  clearInterval(sampler)
  const elapsed = (performance.now() - started) / 1000
  const rssEnd = rssOf(pid)
  const healthyAtEnd = (await fetch(url + '/readyz')).ok
  child.kill('SIGTERM')
  await new Promise((r) => child.once('exit', r))
  await new Promise<void>((r) => upstream.close(() => r()))
  const sorted = latencies.sort((a, b) => a - b)
  const afterWarmup = rssAfterWarmup || rssStart
  return {
    seconds: elapsed,
    scoreCache: options.env?.['SCORE_CACHE'] ?? 'off',
    concurrency: options.concurrency,
    requests: latencies.length,
    byStatus,
    byKind,
    unexpected5xx,
    latencyMs: { p50: pct(sorted, 50), p90: pct(sorted, 90), p99: pct(sorted, 99), max: sorted.at(-1) ?? 0 },
    rssMb: { start: rssStart, afterWarmup, end: rssEnd, peak: rssPeak },
    rssGrowthAfterWarmupPct: ((rssEnd - afterWarmup) / afterWarmup) * 100,
    throughputPerSec: latencies.length / elapsed,
    healthyAtEnd,
  }
}

export function formatSoak(r: SoakResult): string {
  const lines = [
    `soak: ${r.seconds.toFixed(0)} s at concurrency ${r.concurrency}: ${r.requests} requests (${r.throughputPerSec.toFixed(1)}/s), score cache ${r.scoreCache}`,
    `  by status: ${Object.entries(r.byStatus).map(([s, c]) => `${s}=${c}`).join(' ')}`,
    ...Object.entries(r.byKind).map(([k, v]) => `    ${k}: ${Object.entries(v).map(([s, c]) => `${s}=${c}`).join(' ')}`),
    `  unexpected 5xx/errors: ${r.unexpected5xx}`,
    `  latency ms: p50 ${r.latencyMs.p50.toFixed(1)}  p90 ${r.latencyMs.p90.toFixed(1)}  p99 ${r.latencyMs.p99.toFixed(1)}  max ${r.latencyMs.max.toFixed(1)}`,
    `  server RSS MB: start ${r.rssMb.start.toFixed(0)}  after warm-up ${r.rssMb.afterWarmup.toFixed(0)}  end ${r.rssMb.end.toFixed(0)}  peak ${r.rssMb.peak.toFixed(0)}  (growth after warm-up ${r.rssGrowthAfterWarmupPct.toFixed(1)} %)`,
    `  healthy at end: ${r.healthyAtEnd}`,
  ]
  return lines.join('\n')
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const { values } = parseArgs({ options: { minutes: { type: 'string' }, seconds: { type: 'string' }, concurrency: { type: 'string', default: '16' }, json: { type: 'string' } } })
  const seconds = values.seconds ? Number(values.seconds) : Number(values.minutes ?? '1') * 60
  const result = await soak({ seconds, concurrency: Number(values.concurrency) })
  process.stdout.write(formatSoak(result) + '\n')
  if (values.json) writeFileSync(values.json, JSON.stringify(result, null, 2))
  process.exit(result.unexpected5xx === 0 && result.healthyAtEnd ? 0 : 1)
}
