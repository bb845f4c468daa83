/**
 * Issue #12 figures, the previous behaviour and the new one side by side in one run, on
 * the service built from src (bench/results/build, as production runs it):
 *
 *   npx tsx bench/decode-hardening.ts [--quick] [--images ../shared/images/idealo] [--base DIR/dist/main.js]
 *
 * "old" is DECODE_ISOLATION=inline with the scan limit and memory budget lifted (what
 * the service did before); "new" is the defaults. Three measurements:
 *  1. stall: two legal 4000x4000 JPEGs with 2,647 scans each, then a 64x48 JPEG 100 ms
 *     later (DECODE_CONCURRENCY=2): how long the small one takes, and what the two get.
 *     Also "new, scan limit lifted", where only the decode timeout stops them.
 *  2. memory: peak RSS of the service and its decode processes together while 8
 *     progressive 6000x8000 JPEGs are scored at once.
 *  3. throughput at 8 connections on the sample JPEGs, old, new and "all isolated"
 *     (DECODE_INLINE_MAX_PIXELS=0) alternated, so that drift in foreign load hits each;
 *     with --base, also the service built from another commit (its own dist entry, its
 *     own defaults), e.g. the code before this work: the before/after of the whole change.
 * Foreign load (CPU used by other tenants during each throughput run) is printed with it.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import sharp from 'sharp'
import { manyScanJpeg } from '../test/helpers/many-scan-jpeg.js'
import { testModelsDir } from '../test/helpers/models.js'
import { cpuSeconds, processTree, treeCpuSeconds, treeRssMb } from '../test/helpers/process-tree.js'
import { runLoadSampled } from './lib/load.js'
import { markNoise, noiseBetween } from './lib/noise.js'
import { buildDist, projectRoot, scoreCacheNote, startService, type RunningService } from './lib/server.js'

const { values: args } = parseArgs({ options: { quick: { type: 'boolean', default: false }, only: { type: 'string' }, decodes: { type: 'string', default: '2' }, base: { type: 'string' }, images: { type: 'string', default: resolve(projectRoot, '../shared/images/idealo') } } })
const quick = args.quick
const entry = buildDist((m) => console.log(m))
if (!entry) process.exit(1)
const modelsDir = await testModelsDir()

const OLD = { DECODE_ISOLATION: 'inline', JPEG_MAX_SCANS: '1000000', DECODE_MEMORY_BUDGET_BYTES: String(2 ** 50) }
const NEW = {}
const common = { DECODE_CONCURRENCY: args.decodes, REQUEST_DEADLINE_MS: '60000' }

const tree = processTree
const treeRss = treeRssMb
const treeCpu = treeCpuSeconds

async function withService<T>(name: string, env: Record<string, string>, fn: (svc: RunningService) => Promise<T>, serviceEntry = entry!): Promise<T> {
  const svc = await startService({ entry: serviceEntry, modelsDir, env: { ...common, ...env }, logFile: join(projectRoot, 'bench', 'results', `decode-hardening-${name}.log`) })
  try {
    return await fn(svc)
  } finally {
    await svc.stop()
  }
}

async function post(svc: RunningService, body: Buffer): Promise<{ status: number; code: string; ms: number }> {
  const t0 = performance.now()
  const res = await fetch(`${svc.baseUrl}/score`, { method: 'POST', body, headers: { 'content-type': 'image/jpeg' } })
  const json = (await res.json()) as { error?: { code: string } }
  return { status: res.status, code: json.error?.code ?? 'ok', ms: Math.round(performance.now() - t0) }
}

const hostile = manyScanJpeg({ width: 4000, height: 4000 })
const tiny = await sharp({ create: { width: 64, height: 48, channels: 3, background: '#406080' } }).jpeg().toBuffer()
const photo = readFileSync(join(args.images, readdirSync(args.images).find((f) => f.endsWith('.jpg'))!))
const large = await sharp(photo).resize(6000, 8000, { fit: 'fill' }).jpeg({ quality: 90, progressive: true }).toBuffer()

console.log(`DECODE_CONCURRENCY=${args.decodes}; hostile: ${hostile.length} bytes; large progressive: 6000x8000, ${large.length} bytes; entry ${entry}; ${scoreCacheNote()}`)
const run = (part: string) => args.only === undefined || args.only === part
if (run('stall')) console.log('\n1. stall of a 64x48 JPEG sent 100 ms after two 2,647-scan 4000x4000 JPEGs (DECODE_CONCURRENCY as set)')
if (run('stall')) for (const [name, env] of [['old', OLD], ['new', NEW], ['new, scan limit lifted', { JPEG_MAX_SCANS: '1000000' }]] as const) {
  await withService('stall', env, async (svc) => {
    await post(svc, tiny)
    const h = [post(svc, hostile), post(svc, hostile)]
    await new Promise((r) => setTimeout(r, 100))
    const small = await post(svc, tiny)
    const hs = await Promise.all(h)
    console.log(`  ${name.padEnd(24)} tiny: ${small.status} in ${small.ms} ms; hostile: ${hs.map((r) => `${r.status} ${r.code} in ${r.ms} ms`).join(', ')}`)
  })
}

if (run('rss')) console.log('\n2. peak RSS (service + decode processes) while 8 progressive 6000x8000 JPEGs are scored at once')
if (run('rss')) for (const [name, env] of [['old', OLD], ['new', NEW]] as const) {
  await withService('rss', env, async (svc) => {
    await post(svc, tiny)
    const idle = treeRss(svc.pid)
    let peak = idle
    const sampler = setInterval(() => (peak = Math.max(peak, treeRss(svc.pid))), 25)
    const t0 = performance.now()
    const rs = await Promise.all(Array.from({ length: 8 }, () => post(svc, large)))
    clearInterval(sampler)
    const codes = [...new Set(rs.map((r) => `${r.status} ${r.code}`))].join(', ')
    console.log(`  ${name.padEnd(4)} idle ${idle.toFixed(0)} MB, peak ${peak.toFixed(0)} MB (processes: ${tree(svc.pid).length}); 8 answered (${codes}) in ${((performance.now() - t0) / 1000).toFixed(1)} s`)
  })
}

if (!run('load')) process.exit(0)
console.log(`\n3. throughput at 8 connections on ${args.images} (old, new alternated)`)
const rounds = quick ? 1 : 2
const durationSec = quick ? 8 : 15
const figures: Record<string, number[]> = { old: [], new: [], 'all isolated': [], 'base code': [] }
const configs: (readonly [string, Record<string, string>, string?])[] = [['old', OLD], ['new', NEW], ['all isolated', { DECODE_INLINE_MAX_PIXELS: '0' }]]
if (args.base) configs.unshift(['base code', {}, resolve(args.base)])
// "all isolated": DECODE_INLINE_MAX_PIXELS=0, so the sample photos too go to decode processes.
for (let r = 0; r < rounds; r++) {
  for (const [name, env, serviceEntry] of configs) {
    await withService('load', env, async (svc) => {
      // CPU and noise over the measured seconds only (not the load process's start-up).
      const sample = () => ({ tree: treeCpu(svc.pid), main: cpuSeconds(svc.pid), mark: markNoise(treeCpu(svc.pid)) })
      const { result: res, before, after, wallSec } = await runLoadSampled({ url: `${svc.baseUrl}/score`, imagesDir: args.images, connections: 8, durationSec, warmupSec: 3, timeoutSec: 30 }, sample)
      const noise = noiseBetween(before.mark, after.mark, res.loadGenCores * wallSec)
      figures[name]!.push(res.imagesPerSec)
      const images = Math.max(1, res.ok)
      const cpuMsPerImage = ((after.tree - before.tree) * 1000) / images
      const mainMsPerImage = ((after.main - before.main) * 1000) / images
      console.log(`  round ${r + 1} ${name.padEnd(12)} ${res.imagesPerSec.toFixed(1)} images/s, ${cpuMsPerImage.toFixed(0)} ms CPU/image (service + decode processes; service alone ${mainMsPerImage.toFixed(0)}), p50 ${res.latency.p50Ms.toFixed(0)} ms, p99 ${res.latency.p99Ms.toFixed(0)} ms, non-2xx ${JSON.stringify(res.non2xx)}; foreign load ${noise.foreignCores} cores`)
    }, serviceEntry)
  }
}
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length
const o = mean(figures.old!)
for (const name of ['new', 'all isolated', ...(args.base ? ['base code'] : [])]) {
  const n = mean(figures[name]!)
  console.log(`  mean: old ${o.toFixed(1)}, ${name} ${n.toFixed(1)} images/s: ${(((n - o) / o) * 100).toFixed(1)} %`)
}
