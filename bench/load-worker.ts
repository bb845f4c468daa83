/**
 * The load generator, in its own process so it never shares an event loop with the
 * service or the bench driver: autocannon, raw-body POST /score of the sample JPEGs.
 * Each connection starts at a different photo and cycles through all of them.
 *
 *   node --import tsx bench/load-worker.ts '<json LoadSpec>'
 *
 * Prints one JSON line (LoadResult) on stdout.
 */
import autocannon from 'autocannon'
import { LOAD_EVENTS } from './lib/load-events.js'
import { loadSampleJpegs } from './lib/images.js'
import { summarize, type LatencySummary } from './lib/stats.js'

export interface LoadSpec {
  url: string
  imagesDir: string
  connections: number
  durationSec: number
  warmupSec: number
  timeoutSec: number
}

export interface LoadResult {
  connections: number
  durationSec: number
  ok: number
  /** 2xx responses during the unmeasured warm-up (for CPU-per-image accounting). */
  warmupOk: number
  non2xx: Record<string, number>
  errors: number
  timeouts: number
  imagesPerSec: number
  latency: LatencySummary
  /** CPU the load generator itself used, in cores (user + system / wall). */
  loadGenCores: number
}

async function run(spec: LoadSpec, durationSec: number, record: boolean) {
  const images = loadSampleJpegs(spec.imagesDir)
  const requests = images.map((img) => ({ method: 'POST' as const, path: '/score', headers: { 'content-type': 'image/jpeg' }, body: img.bytes }))
  let client = 0
  const latencies: number[] = []
  const statuses = new Map<number, number>()
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon(
      {
        url: spec.url,
        connections: spec.connections,
        duration: durationSec,
        timeout: spec.timeoutSec,
        requests,
        setupClient: (c) => {
          const k = (client++ * 7) % requests.length
          c.setRequests([...requests.slice(k), ...requests.slice(0, k)])
        },
      },
      (err, r) => (err ? reject(err) : resolve(r)),
    )
    instance.on('response', (_client, statusCode, _bytes, responseTime) => {
      if (!record) return
      statuses.set(statusCode, (statuses.get(statusCode) ?? 0) + 1)
      if (statusCode >= 200 && statusCode < 300) latencies.push(responseTime)
    })
  })
  return { result, latencies, statuses }
}

async function main() {
  const spec = JSON.parse(process.argv[2] ?? '{}') as LoadSpec
  let warmupOk = 0
  if (spec.warmupSec > 0) {
    const w = await run(spec, spec.warmupSec, true)
    for (const [code, n] of w.statuses) if (code >= 200 && code < 300) warmupOk += n
  }
  process.stdout.write(`${LOAD_EVENTS.measuring}\n`)
  const cpu0 = process.cpuUsage()
  const t0 = performance.now()
  const { result, latencies, statuses } = await run(spec, spec.durationSec, true)
  const wallSec = (performance.now() - t0) / 1000
  const cpu = process.cpuUsage(cpu0)
  process.stdout.write(`${LOAD_EVENTS.measured}\n`)
  const non2xx: Record<string, number> = {}
  let ok = 0
  for (const [code, n] of statuses) {
    if (code >= 200 && code < 300) ok += n
    else non2xx[String(code)] = n
  }
  const out: LoadResult = {
    connections: spec.connections,
    durationSec: spec.durationSec,
    ok,
    warmupOk,
    non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    // autocannon's own clock for the run: responses / the measured duration.
    imagesPerSec: ok / result.duration,
    latency: summarize(latencies),
    loadGenCores: (cpu.user + cpu.system) / 1e6 / wallSec,
  }
  process.stdout.write(`${JSON.stringify(out)}\n`)
}

main().catch((err: unknown) => {
  process.stderr.write(`load-worker: ${err instanceof Error ? err.stack : String(err)}\n`)
  process.exitCode = 1
})
