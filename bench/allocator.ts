/**
 * RSS of the real service under each allocator setting: glibc malloc as is, glibc with
 * MALLOC_ARENA_MAX=2, and jemalloc preloaded (with and without background purging).
 * Each setting: start `node dist/main.cjs` (npm run build first), warm up, then three
 * bursts of BURST concurrent POST /score uploads of large progressive JPEGs (made in a
 * temp folder from ../shared/images, resized up, never committed), each followed by an
 * idle settle. Prints VmRSS after warm-up, after each burst and after each settle, and
 * VmHWM (the peak). Settings run one after another, on the same images.
 *
 *   npm run build && npx tsx bench/allocator.ts [--burst 40] [--settle-ms 10000] [--bursts 3]
 *     [--only <setting name substring>] [--env KEY=VALUE ...]   (--env applies to every setting)
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { parseArgs } from 'node:util'
import sharp from 'sharp'
import { projectRoot, startService } from './lib/server.js'

const { values } = parseArgs({ options: { burst: { type: 'string', default: '40' }, 'settle-ms': { type: 'string', default: '10000' }, bursts: { type: 'string', default: '3' }, only: { type: 'string' }, env: { type: 'string', multiple: true, default: [] } } })
const BURST = Number(values.burst)
const SETTLE_MS = Number(values['settle-ms'])
const BURSTS = Number(values.bursts)
const extraEnv = Object.fromEntries(values.env.map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]))
const JEMALLOC = '/usr/lib/x86_64-linux-gnu/libjemalloc.so.2'
const entry = join(projectRoot, 'dist', 'main.cjs')
const modelsDir = join(projectRoot, '.cache', 'test-models-v3')

const settings: { name: string; env: Record<string, string> }[] = [
  { name: 'glibc', env: { MALLOC_ARENA_MAX: '' } },
  { name: 'glibc MALLOC_ARENA_MAX=2', env: { MALLOC_ARENA_MAX: '2' } },
  { name: 'jemalloc', env: { MALLOC_ARENA_MAX: '', LD_PRELOAD: JEMALLOC } },
  { name: 'jemalloc background_thread', env: { MALLOC_ARENA_MAX: '', LD_PRELOAD: JEMALLOC, MALLOC_CONF: 'background_thread:true' } },
  // Freed pages go back after 1 s instead of jemalloc's 10 s: what sustained load holds (docs/performance.md).
  { name: 'jemalloc background_thread 1 s decay', env: { MALLOC_ARENA_MAX: '', LD_PRELOAD: JEMALLOC, MALLOC_CONF: 'background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0' } },
]

async function largeJpegs(): Promise<Buffer[]> {
  const dir = join(tmpdir(), 'nima-allocator-bench')
  mkdirSync(dir, { recursive: true })
  const src = join(projectRoot, '..', 'shared', 'images', 'idealo')
  const photos = readdirSync(src).filter((f) => f.endsWith('.jpg')).slice(0, 4)
  const out: Buffer[] = []
  for (const f of photos) {
    const path = join(dir, `${f}.5000x3750.progressive.jpg`)
    if (!existsSync(path)) writeFileSync(path, await sharp(join(src, f)).resize(5000, 3750, { fit: 'fill' }).jpeg({ quality: 92, progressive: true }).toBuffer())
    out.push(readFileSync(path))
  }
  return out
}

const rssMb = (pid: number, key: 'VmRSS' | 'VmHWM'): number => {
  const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  return Math.round(Number(m?.[1]) / 1024)
}

async function score(baseUrl: string, body: Buffer): Promise<number> {
  const r = await fetch(`${baseUrl}/score`, { method: 'POST', body, headers: { 'content-type': 'image/jpeg' } })
  await r.arrayBuffer()
  return r.status
}

const images = await largeJpegs()
console.log(`${Object.keys(extraEnv).length ? `env: ${values.env.join(' ')}; ` : ''}images: ${images.length} progressive JPEGs 5000x3750 (${images.map((b) => (b.length / 1e6).toFixed(1)).join(', ')} MB); ${BURSTS} bursts of ${BURST} concurrent uploads; settle ${SETTLE_MS} ms`)
if (!existsSync(JEMALLOC)) console.log(`(${JEMALLOC} missing: the jemalloc rows will measure glibc)`)
const rows: string[][] = []
for (const s of settings.filter((x) => values.only === undefined || x.name.includes(values.only))) {
  const svc = await startService({ entry, modelsDir, logFile: join(tmpdir(), 'nima-allocator-bench', `${s.name.replace(/\W+/g, '-')}.log`), env: { REQUEST_DEADLINE_MS: '300000', ...extraEnv, ...s.env }, readyTimeoutMs: 120_000 })
  try {
    for (const img of images) await score(svc.baseUrl, img)
    await sleep(2000)
    const jemallocMapped = readFileSync(`/proc/${svc.pid}/maps`, 'utf8').includes('libjemalloc')
    const row = [`${s.name}${jemallocMapped ? ' (libjemalloc mapped)' : ''}`, String(rssMb(svc.pid, 'VmRSS'))]
    const statuses = new Map<number, number>()
    for (let b = 0; b < BURSTS; b++) {
      const done = await Promise.all(Array.from({ length: BURST }, (_, i) => score(svc.baseUrl, images[i % images.length]!)))
      for (const st of done) statuses.set(st, (statuses.get(st) ?? 0) + 1)
      const after = rssMb(svc.pid, 'VmRSS')
      await sleep(SETTLE_MS)
      row.push(`${after} → ${rssMb(svc.pid, 'VmRSS')}`)
    }
    row.push(String(rssMb(svc.pid, 'VmHWM')), [...statuses].map(([k, v]) => `${v}×${k}`).join(' '))
    rows.push(row)
    console.log(row.join(' | '))
  } finally {
    await svc.stop()
  }
}
console.log(`\n| setting | RSS after warm-up (MiB) | ${Array.from({ length: BURSTS }, (_, b) => `burst ${b + 1}: after → settled`).join(' | ')} | peak VmHWM | answers |`)
console.log(`| --- | --- | ${Array.from({ length: BURSTS }, () => '---').join(' | ')} | --- | --- |`)
for (const r of rows) console.log(`| ${r.join(' | ')} |`)
