/**
 * Stalled uploads against the real service (a child process): N connections each declare
 * a large Content-Length, send part of it, then stall. Prints the server's RSS before,
 * while they stall and after they end, and what each connection got back and when.
 *
 *   npx tsx bench/stalled-uploads.ts                       (40 × declare 20 MiB, send 15 MiB)
 *   npx tsx bench/stalled-uploads.ts --connections 40 --wait-seconds 45 --env BODY_TIMEOUT_MS=10000
 *
 * Clients that get no answer within --wait-seconds hang up themselves (what issue #12
 * measured: memory held for as long as the clients waited).
 */
import { connect, type Socket } from 'node:net'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { parseArgs } from 'node:util'
import sharp from 'sharp'
import { testModelsDir } from '../test/helpers/models.js'
import { projectRoot, scoreCacheNote, startService } from './lib/server.js'

const { values: args } = parseArgs({
  options: {
    connections: { type: 'string', default: '40' },
    'declare-mib': { type: 'string', default: '20' },
    'send-mib': { type: 'string', default: '15' },
    'wait-seconds': { type: 'string', default: '45' },
    env: { type: 'string', multiple: true, default: [] },
  },
})
const N = Number(args.connections)
const MiB = 1024 * 1024
const declared = Number(args['declare-mib']) * MiB
const sent = Number(args['send-mib']) * MiB
const waitMs = Number(args['wait-seconds']) * 1000
const env = Object.fromEntries(args.env.map((kv) => kv.split('=', 2) as [string, string]))

interface Outcome {
  status: number
  code: string
  /** From the last byte written (the stall's start) to the first byte of the answer. */
  afterStallMs: number
  /** From the connection's first byte to the first byte of the answer. */
  totalMs: number
}

const service = await startService({ entry: 'tsx', modelsDir: await testModelsDir(), env, logFile: join(projectRoot, 'bench', 'results', 'stalled-uploads.log') })
const rss = () => {
  service.resetPeak()
  return service.peakMemory().rssMb
}
/** What V8 says it holds: Buffers (external) and the JS heap, in MiB, from the service's own /metrics. */
const v8Held = async () => {
  const text = await (await fetch(`${service.baseUrl}/metrics`)).text()
  const mib = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? Number.NaN) / 1024 / 1024
  return `external ${mib('nima_nodejs_external_memory_bytes').toFixed(0)}, heap used ${mib('nima_nodejs_heap_size_used_bytes').toFixed(0)}`
}
await sleep(1000)
const baseline = rss()
const v8Before = await v8Held()
// Any bytes will do: the service never sees the end of the body.
const payload = Buffer.alloc(sent, 0xab)
payload.set([0xff, 0xd8, 0xff, 0xe0])

const sockets: Socket[] = []
const outcomes = Array.from({ length: N }, (_, i) => {
  return new Promise<Outcome | undefined>((resolve) => {
    const socket = connect(service.port, '127.0.0.1')
    sockets.push(socket)
    const started = performance.now()
    let stalled = Number.NaN
    let answer = ''
    let firstByte = Number.NaN
    socket.on('error', () => {})
    socket.write(`POST /score HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: image/jpeg\r\nContent-Length: ${declared}\r\nX-Request-Id: stalled-${i}\r\n\r\n`)
    socket.write(payload, () => (stalled = performance.now()))
    socket.on('data', (d) => {
      if (Number.isNaN(firstByte)) firstByte = performance.now()
      answer += d.toString('latin1')
    })
    socket.on('close', () => {
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(answer)?.[1] ?? 0)
      if (!status) return resolve(undefined)
      const code = /"code":"([A-Z_]+)"/.exec(answer)?.[1] ?? '(no code)'
      resolve({ status, code, afterStallMs: firstByte - stalled, totalMs: firstByte - started })
    })
  })
})

let peak = baseline
let allSentAt = Number.NaN
const sampler = setInterval(() => (peak = Math.max(peak, rss())), 200)
const started = performance.now()
const settled = Promise.all(outcomes)
const timedOut = await Promise.race([settled.then(() => false), sleep(waitMs).then(() => true)])
allSentAt = performance.now() - started
const whileStalled = rss()
const v8While = await v8Held()
if (timedOut) for (const s of sockets) s.destroy()
const results = await settled
clearInterval(sampler)
await sleep(2000)
const after2s = rss()
await sleep(8000)
const after10s = rss()
const v8After = await v8Held()
// An idle V8 need not collect, so dropped bodies wait for the next garbage collection; a
// little traffic may start one (the V8 line below says whether it did).
const small = await sharp({ create: { width: 64, height: 64, channels: 3, background: '#336699' } }).jpeg().toBuffer()
for (let i = 0; i < 20; i++) await (await fetch(`${service.baseUrl}/score`, { method: 'POST', headers: { 'content-type': 'image/jpeg' }, body: small })).arrayBuffer()
await sleep(1000)
const afterTraffic = rss()
const v8AfterTraffic = await v8Held()
await service.stop()

const answered = results.filter((r): r is Outcome => r !== undefined)
const byAnswer = new Map<string, number>()
for (const r of answered) byAnswer.set(`${r.status} ${r.code}`, (byAnswer.get(`${r.status} ${r.code}`) ?? 0) + 1)
const sorted = (xs: number[]) => [...xs].sort((a, b) => a - b)
const stat = (xs: number[]) => (xs.length ? `min ${sorted(xs)[0]!.toFixed(0)} / median ${sorted(xs)[Math.floor(xs.length / 2)]!.toFixed(0)} / max ${sorted(xs).at(-1)!.toFixed(0)} ms` : 'n/a')
console.log(`${N} connections, each declaring ${declared / MiB} MiB and sending ${sent / MiB} MiB, then stalling; env ${JSON.stringify(env)}; ${scoreCacheNote(env)}`)
console.log(`answers: ${[...byAnswer].map(([k, n]) => `${n} × ${k}`).join(', ') || 'none'}; ${N - answered.length} got none${timedOut ? ` (clients hung up after ${waitMs / 1000} s)` : ''}`)
const timeouts = answered.filter((r) => r.status === 408)
if (timeouts.length) console.log(`408: after the stall began ${stat(timeouts.map((r) => r.afterStallMs))}; from the first byte ${stat(timeouts.map((r) => r.totalMs))}`)
const refused = answered.filter((r) => r.status === 503)
if (refused.length) console.log(`503: from the first byte ${stat(refused.map((r) => r.totalMs))}`)
console.log(`server RSS MiB: before ${baseline.toFixed(0)}, peak ${peak.toFixed(0)} (+${(peak - baseline).toFixed(0)}), at ${(allSentAt / 1000).toFixed(1)} s ${whileStalled.toFixed(0)}, 2 s after the last connection ended ${after2s.toFixed(0)} (+${(after2s - baseline).toFixed(0)}), 10 s after ${after10s.toFixed(0)} (+${(after10s - baseline).toFixed(0)})`)
console.log(`then 20 small /score requests: RSS ${afterTraffic.toFixed(0)} MiB (+${(afterTraffic - baseline).toFixed(0)})`)
console.log(`V8 MiB: before ${v8Before}; at ${(allSentAt / 1000).toFixed(1)} s ${v8While}; 10 s after ${v8After}; after the 20 requests ${v8AfterTraffic}`)
