/**
 * Where the server's CPU goes under load: per-thread CPU from /proc/<pid>/task (the main
 * thread against everything else: ORT pool threads, libuv pool threads running sharp,
 * V8 helpers), and a self-time summary of the main thread's `node --cpu-prof` profile.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { basename } from 'node:path'

const CLK_TCK = 100

/** The kind of a thread: `named` first, then its name with digits dropped, so a pool's threads add up. */
function threadKind(pid: number, tid: string, named: ReadonlyMap<number, string>): string {
  if (Number(tid) === pid) return 'main (event loop)'
  const name = named.get(Number(tid))
  if (name) return name
  try {
    return readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim().replace(/[0-9]+/g, '#')
  } catch {
    return 'ended'
  }
}

/**
 * CPU seconds per thread kind (see threadKind), for where the CPU of an image goes.
 * `named`: thread ids the service reported itself (its session threads, from the log).
 */
export function threadCpuByKind(pid: number, named: ReadonlyMap<number, string> = new Map()): Map<string, number> {
  const out = new Map<string, number>()
  for (const [tid, cpu] of threadCpu(pid)) {
    const kind = threadKind(pid, String(tid), named)
    out.set(kind, (out.get(kind) ?? 0) + cpu)
  }
  return out
}

/** The session threads a service logged at start-up (`sessionThreadId` on each model's line). */
export function sessionThreadsFromLog(log: string): Map<number, string> {
  const out = new Map<number, string>()
  for (const line of log.split('\n')) {
    if (!line.includes('sessionThreadId')) continue
    try {
      const { model, sessionThreadId } = JSON.parse(line) as { model?: string; sessionThreadId?: number }
      if (typeof sessionThreadId === 'number') out.set(sessionThreadId, `ONNX Runtime session (${model ?? '?'})`)
    } catch {
      // not a JSON line
    }
  }
  return out
}

/** CPU seconds per thread id. */
export function threadCpu(pid: number): Map<number, number> {
  const out = new Map<number, number>()
  let tids: string[] = []
  try {
    tids = readdirSync(`/proc/${pid}/task`)
  } catch {
    return out
  }
  for (const tid of tids) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8')
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
      out.set(Number(tid), (Number(f[11]) + Number(f[12])) / CLK_TCK)
    } catch {
      // thread ended
    }
  }
  return out
}

export interface ThreadShare {
  /** Cores used by the main (event-loop) thread over the window. */
  mainCores: number
  /** Cores used by all other threads together. */
  otherCores: number
  /** The busiest other threads, cores each. */
  topOthers: number[]
}

export function threadShare(pid: number, before: Map<number, number>, after: Map<number, number>, wallSec: number): ThreadShare {
  let main = 0
  const others: number[] = []
  for (const [tid, cpu] of after) {
    const d = (cpu - (before.get(tid) ?? 0)) / wallSec
    if (tid === pid) main = d
    else if (d > 0) others.push(d)
  }
  others.sort((a, b) => b - a)
  const r = (x: number) => Math.round(x * 100) / 100
  return { mainCores: r(main), otherCores: r(others.reduce((s, x) => s + x, 0)), topOthers: others.slice(0, 6).map(r) }
}

interface ProfileNode {
  id: number
  callFrame: { functionName: string; url: string; lineNumber: number }
  children?: number[]
}

interface CpuProfile {
  nodes: ProfileNode[]
  samples: number[]
  timeDeltas: number[]
  startTime: number
  endTime: number
}

export interface ProfileEntry {
  label: string
  selfMs: number
  share: number
}

/** Self time by function (native frames are named after their JS caller), largest first. */
export function summarizeCpuProfile(path: string, top = 15): { totalMs: number; entries: ProfileEntry[] } {
  const p = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile
  const byId = new Map(p.nodes.map((n) => [n.id, n]))
  const parent = new Map<number, number>()
  for (const n of p.nodes) for (const c of n.children ?? []) parent.set(c, n.id)
  const where = (n: ProfileNode) => (n.callFrame.url ? `${basename(n.callFrame.url)}:${n.callFrame.lineNumber + 1}` : '')
  const label = (n: ProfileNode): string => {
    const name = n.callFrame.functionName || '(anonymous)'
    if (n.callFrame.url || name.startsWith('(')) return `${name} ${where(n)}`.trim()
    const up = parent.get(n.id)
    const caller = up === undefined ? undefined : byId.get(up)
    return `${name} [native, from ${caller ? `${caller.callFrame.functionName || '(anonymous)'} ${where(caller)}` : '?'}]`
  }
  const known: Record<string, string> = {
    'backend.js:115': 'onnxruntime-node session.run: the synchronous binding call',
    'backend.js:45': 'onnxruntime-node session creation',
  }
  const self = new Map<string, number>()
  let total = 0
  p.samples.forEach((id, i) => {
    const dt = (p.timeDeltas[i] ?? 0) / 1000
    total += dt
    const n = byId.get(id)
    if (!n) return
    const raw = label(n)
    const k = Object.keys(known).find((s) => raw.endsWith(` ${s}`))
    const l = k ? `${known[k]} (${raw})` : raw
    self.set(l, (self.get(l) ?? 0) + dt)
  })
  const entries = [...self.entries()]
    .map(([l, ms]) => ({ label: l, selfMs: Math.round(ms), share: Math.round((ms / total) * 1000) / 10 }))
    .sort((a, b) => b.selfMs - a.selfMs)
    .slice(0, top)
  return { totalMs: Math.round(total), entries }
}
