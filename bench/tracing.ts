/**
 * npm run bench:tracing — what tracing costs the service (issue #26).
 *
 * Side by side in one run, each service a real `node dist/main.cjs` under the same
 * autocannon load (raw-body POST /score of the sample JPEGs, the score cache off):
 *   - off: no OTEL_* variable set, the default: the SDK is never loaded, and the service's
 *     spans (src/util/tracing.ts) cost a context look-up each;
 *   - on: OTEL_TRACES_SAMPLER=always_on, every span exported (OTLP http/protobuf) to a sink in
 *     this process that reads and acknowledges each export;
 *   - before (with --baseline-entry PATH): another build's main.cjs: the same commit with
 *     the seam compiled out (bench/tracing-ab/build.sh), for the direct "off vs no tracing
 *     code at all" comparison.
 * The services run side by side and take turns, ROUNDS times in rotating order, so a
 * machine whose load drifts during the run disturbs each of them alike; each round reports
 * images/s, latency and the service's CPU per image, and the table gives the median round.
 *
 * The off path is also priced directly: each seam call with no SDK registered (the same
 * functions the service calls, in this process, which has none), times the calls one
 * /score image makes, against the CPU per image measured for `off`.
 *
 *   npm run build && npm run bench:tracing [-- --rounds 3 --duration 20 --connections 8 --baseline-entry DIR/dist/main.cjs]
 *
 * The pure A/B (the same commit with the tracing seam compiled out, bench/tracing-ab/build.sh):
 *   npm run bench:tracing -- --entry DIR/seam/dist/main.cjs --baseline-entry DIR/none/dist/main.cjs --skip-on
 */
import { AsyncResource } from 'node:async_hooks'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { existsSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { parseArgs } from 'node:util'
import { testModelsDir } from '../test/helpers/models.js'
import { activeTraceIds, recordingContext, traced } from '../src/util/tracing.js'
import { runLoadSampled } from './lib/load.js'
import { machineInfo, mdTable, print, section, timestamp, uptime, writeJson } from './lib/report.js'
import { projectRoot, scoreCacheNote, startService, type RunningService } from './lib/server.js'
import { median, round } from './lib/stats.js'

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    duration: { type: 'string', default: '20' },
    warmup: { type: 'string', default: '3' },
    connections: { type: 'string', default: '8' },
    settle: { type: 'string', default: '6' },
    images: { type: 'string', default: resolve(projectRoot, '../shared/images') },
    'baseline-entry': { type: 'string' },
    entry: { type: 'string' },
    'skip-on': { type: 'boolean', default: false },
    out: { type: 'string' },
  },
})
const ROUNDS = Number(args.rounds)
const entry = resolve(args.entry ?? join(projectRoot, 'dist', 'main.cjs'))
if (!existsSync(entry)) throw new Error(`${entry} is missing: npm run build first`)

// ---- the OTLP sink: every export read to the end and acknowledged, as a collector would ----
let exports = 0
let exportedBytes = 0
const sink = createServer((req, res) => {
  req.on('data', (d: Buffer) => (exportedBytes += d.length))
  req.on('end', () => {
    exports += 1
    res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end()
  })
})
await new Promise<void>((r) => sink.listen(0, '127.0.0.1', r))
const sinkUrl = `http://127.0.0.1:${(sink.address() as AddressInfo).port}`

interface Variant {
  name: string
  entry: string
  env: Record<string, string>
}
const variants: Variant[] = [{ name: 'off (default)', entry, env: {} }]
if (!args['skip-on']) variants.push({ name: 'on, always_on', entry, env: { OTEL_EXPORTER_OTLP_ENDPOINT: sinkUrl, OTEL_TRACES_SAMPLER: 'always_on' } })
const BASELINE = 'before tracing'
if (args['baseline-entry']) variants.unshift({ name: BASELINE, entry: resolve(args['baseline-entry']), env: {} })

const modelsDir = await testModelsDir()
const stamp = timestamp()
section(`Tracing cost — ${stamp}`)
print(`machine: ${JSON.stringify(machineInfo())}; load at start: ${uptime()}`)
print(`${scoreCacheNote()}; ${args.connections} connections, ${args.duration} s measured after ${args.warmup} s warm-up, ${ROUNDS} rounds in rotating order, ${args.settle} s settle between windows`)

const services: RunningService[] = []
try {
  for (const v of variants) {
    services.push(await startService({ entry: v.entry, modelsDir, env: v.env, logFile: join(projectRoot, 'bench', 'results', `tracing-${stamp}-${v.name.replace(/\W+/g, '-')}.log`), readyTimeoutMs: 180_000 }))
  }
  const rows: { variant: string; round: number; imagesPerSec: number; p50: number; p99: number; cpuMsPerImage: number; errors: number }[] = []
  for (let round = 0; round < ROUNDS; round++) {
    for (let k = 0; k < variants.length; k++) {
      const i = (k + round) % variants.length
      const svc = services[i]!
      await sleep(Number(args.settle) * 1000)
      const load = await runLoadSampled(
        { url: svc.baseUrl, imagesDir: args.images, connections: Number(args.connections), durationSec: Number(args.duration), warmupSec: Number(args.warmup), timeoutSec: 60 },
        () => svc.cpuSeconds(),
      )
      const r = load.result
      const row = {
        variant: variants[i]!.name,
        round: round + 1,
        imagesPerSec: r.imagesPerSec,
        p50: r.latency.p50Ms,
        p99: r.latency.p99Ms,
        cpuMsPerImage: ((load.after - load.before) * 1000) / Math.max(1, r.ok),
        errors: r.errors + r.timeouts + Object.values(r.non2xx).reduce((a, b) => a + b, 0),
      }
      rows.push(row)
      print(`round ${row.round} ${row.variant}: ${round1(row.imagesPerSec)} images/s, p50 ${round1(row.p50)} ms, p99 ${round1(row.p99)} ms, ${round1(row.cpuMsPerImage)} ms CPU/image, ${row.errors} errors`)
    }
  }

  const table = variants.map((v) => {
    const mine = rows.filter((r) => r.variant === v.name)
    return { variant: v.name, imagesPerSec: median(mine.map((r) => r.imagesPerSec)), p50: median(mine.map((r) => r.p50)), p99: median(mine.map((r) => r.p99)), cpuMsPerImage: median(mine.map((r) => r.cpuMsPerImage)) }
  })
  const off = table.find((t) => t.variant === 'off (default)')!
  const rel = (x: number, base: number) => `${x >= base ? '+' : ''}${round(((x - base) / base) * 100, 1)} %`
  section('Median of the rounds')
  print(
    mdTable(
      ['variant', 'images/s', 'p50 ms', 'p99 ms', 'CPU ms / image', 'images/s vs off', 'CPU/image vs off'],
      table.map((t) => [t.variant, round1(t.imagesPerSec), round1(t.p50), round1(t.p99), round1(t.cpuMsPerImage), rel(t.imagesPerSec, off.imagesPerSec), rel(t.cpuMsPerImage, off.cpuMsPerImage)]),
    ),
  )
  print(`exported while on: ${exports} OTLP requests, ${round(exportedBytes / 1e6, 1)} MB`)
  if (args['baseline-entry']) {
    // Paired by round: the two ran seconds apart, so a drift of the machine's load between
    // rounds cancels out of each round's ratio; the spread of the ratios is the noise.
    const paired = (key: 'cpuMsPerImage' | 'imagesPerSec') =>
      Array.from({ length: ROUNDS }, (_, r) => {
        const at = (name: string) => rows.find((x) => x.variant === name && x.round === r + 1)![key]
        return (at('off (default)') - at(BASELINE)) / at(BASELINE)
      }).sort((a, b) => a - b)
    const pct = (x: number) => `${x >= 0 ? '+' : ''}${round(x * 100, 2)} %`
    section(`Off against ${args['baseline-entry']}, paired by round`)
    for (const key of ['cpuMsPerImage', 'imagesPerSec'] as const) {
      const d = paired(key)
      print(`${key === 'cpuMsPerImage' ? 'CPU per image' : 'images/s'}: median ${pct(median(d))} (nearest rank), rounds ${d.map(pct).join(', ')}`)
    }
  }

  // ---- the off path, priced call by call (this process has no SDK registered) ----
  const micro = offPathNs()
  // One /score image, tracing off: the onRequest hook's look-up, the decode span's, one
  // batcher submit per model (two models), and a limiter hand-over when it queued (upper
  // bound: every image queues at both the admission and the decode slot).
  const perImageNs = micro.activeTraceIds + micro.traced + 2 * micro.recordingContext + 2 * micro.limiterHandOver
  section('The off path, call by call (no SDK registered)')
  print(
    mdTable(
      ['call', 'ns per call'],
      Object.entries(micro).map(([k, v]) => [k, round(v, 1)]),
    ),
  )
  print(`per /score image: ≈ ${round(perImageNs, 0)} ns, ${round((perImageNs / 1e6 / off.cpuMsPerImage) * 100, 4)} % of the ${round1(off.cpuMsPerImage)} ms CPU one image costs`)
  const out = args.out ?? join(projectRoot, 'bench', 'results', `tracing-${stamp}.json`)
  writeJson(out, { stamp, machine: machineInfo(), args, rows, table, exports, exportedBytes, micro, perImageNs })
  print(`written: ${out}`)
} finally {
  for (const s of services) await s.stop()
  sink.close()
}

function round1(x: number): number {
  return round(x, 1)
}

/** Nanoseconds per call of each seam function on the off path, best of 5 runs of 200,000 calls. */
function offPathNs(): Record<'activeTraceIds' | 'recordingContext' | 'traced' | 'limiterHandOver', number> {
  const time = (fn: () => unknown): number => {
    let best = Number.POSITIVE_INFINITY
    for (let run = 0; run < 5; run++) {
      const n = 200_000
      const t0 = process.hrtime.bigint()
      for (let i = 0; i < n; i++) fn()
      best = Math.min(best, Number(process.hrtime.bigint() - t0) / n)
    }
    return best
  }
  const resolved = Promise.resolve(1)
  const noop = (): void => {}
  return {
    activeTraceIds: time(() => activeTraceIds()),
    recordingContext: time(() => recordingContext()),
    // Net of what the call wraps: a resolved promise returned as is.
    traced: time(() => traced('x', { a: 1 }, () => resolved)) - time(() => resolved),
    // What src/util/limiter.ts does for a task that waited: its caller's context kept and restored.
    limiterHandOver: time(() => new AsyncResource('nima-serve:limiter').runInAsyncScope(noop)),
  }
}
