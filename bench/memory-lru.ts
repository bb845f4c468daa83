/**
 * The score cache's memory layer: src/cache/memory-lru.ts (lru-cache underneath) against
 * the hand-written Map LRU it replaced (git show ba1a01b:src/cache/memory-lru.ts > /tmp/old-memory-lru.ts),
 * same workload, interleaved rounds in one process. Run: node --expose-gc --import tsx bench/memory-lru.ts /tmp/old-memory-lru.ts
 * Workload: score-sized entries (~250 characters), keys like the cache's, a bound that
 * holds about a third of the key space, 4 reads per write, reads skewed to recent keys.
 * Then the heap each holds per entry beyond its strings (100,000 entries, one child
 * process per measurement so that nothing else is collected in the window).
 */
import { execFileSync } from 'node:child_process'
import { fileURLToPath, pathToFileURL } from 'node:url'
import { resolve } from 'node:path'
import { MemoryLru } from '../src/cache/memory-lru.js'

interface Lru {
  get(key: string): string | undefined
  set(key: string, value: string): void
  readonly size: number
  readonly evictions: number
}

const oldPath = process.argv[2]
if (!oldPath) throw new Error('usage: node --expose-gc --import tsx bench/memory-lru.ts OLD_MEMORY_LRU.ts')
const Old = ((await import(pathToFileURL(resolve(oldPath)).href)) as { MemoryLru: new (n: number) => Lru }).MemoryLru

if (process.argv[3] === '--heap-per-entry') {
  const n = 100_000
  const ks = Array.from({ length: n }, (_, i) => `s1/${i.toString(16).padStart(64, '0')}/aesthetic@2026-01#0123456789abcdef`)
  const v = 'v'.repeat(250)
  // Let start-up's garbage (the TypeScript loader's) go first.
  await new Promise((r) => setTimeout(r, 200))
  for (let i = 0; i < 3; i++) globalThis.gc!()
  const before = process.memoryUsage().heapUsed
  const lru: Lru = process.argv[4] === 'old' ? new Old(1e12) : new MemoryLru(1e12)
  for (const k of ks) lru.set(k, v)
  for (let i = 0; i < n; i += 3) lru.get(ks[i]!)
  globalThis.gc!()
  const held = process.memoryUsage().heapUsed - before
  if (lru.size !== n) throw new Error(`kept ${lru.size} of ${n}`) // and keeps lru alive through the measurement
  process.stdout.write(String(held / n))
  process.exit(0)
}

const KEYS = 60_000
const value = JSON.stringify({ mean: 5.123456789, std: 1.23456789, distribution: Array.from({ length: 10 }, (_, i) => 0.1 + i / 1e3) })
const keys = Array.from({ length: KEYS }, (_, i) => `s1/${i.toString(16).padStart(64, '0')}/aesthetic@2026-01#0123456789abcdef`)
const BOUND = Math.round((KEYS / 3) * (2 * (keys[0]!.length + value.length) + 128))
const OPS = 1_000_000

function run(make: () => Lru): { opsPerMs: number; hits: number } {
  const lru = make()
  let seed = 1
  const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32)
  let hits = 0
  let next = 0
  const t0 = performance.now()
  for (let i = 0; i < OPS; i++) {
    if (i % 5 === 0) lru.set(keys[next++ % KEYS]!, value)
    else {
      const back = Math.floor(rnd() ** 3 * KEYS)
      if (lru.get(keys[(next - back + KEYS * 2) % KEYS]!) !== undefined) hits++
    }
  }
  const ms = performance.now() - t0
  if (lru.size === 0) throw new Error('nothing kept')
  return { opsPerMs: Math.round(OPS / ms), hits }
}

const rows: Record<string, { opsPerMs: number[]; heap: number[]; hits: number }> = {}
for (let round = 0; round < 5; round++) {
  for (const [name, make] of [
    ['hand-written Map', () => new Old(BOUND)],
    ['lru-cache', () => new MemoryLru(BOUND)],
  ] as const) {
    const r = run(make)
    const row = (rows[name] ??= { opsPerMs: [], heap: [], hits: r.hits })
    row.opsPerMs.push(r.opsPerMs)
    const self = fileURLToPath(import.meta.url)
    const heap = execFileSync(process.execPath, ['--expose-gc', '--import', 'tsx', self, oldPath, '--heap-per-entry', name === 'lru-cache' ? 'new' : 'old'], { encoding: 'utf8' })
    row.heap.push(Number(heap))
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
console.log(`bound ${BOUND} bytes (~${KEYS / 3} entries), ${OPS} operations (1 write : 4 reads), 5 interleaved rounds, medians`)
for (const [name, r] of Object.entries(rows)) {
  console.log(`${name.padEnd(18)} ${median(r.opsPerMs)} ops/ms, hits ${r.hits}; heap per entry beyond its strings ${median(r.heap).toFixed(0)} bytes`)
}
