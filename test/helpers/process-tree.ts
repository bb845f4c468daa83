/** A process and its descendants as /proc shows them: the service plus its decode processes. */
import { readdirSync, readFileSync } from 'node:fs'

/** Pids of `root` and all its descendants, from /proc/<pid>/stat. */
export function processTree(root: number): number[] {
  const children = new Map<number, number[]>()
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8')
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1])
      children.set(ppid, [...(children.get(ppid) ?? []), Number(name)])
    } catch {
      // gone meanwhile
    }
  }
  const out = [root]
  for (let i = 0; i < out.length; i++) out.push(...(children.get(out[i]!) ?? []))
  return out
}

/** VmRSS of one process in MiB; 0 once it is gone. */
export function rssMb(pid: number): number {
  try {
    return Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024
  } catch {
    return 0
  }
}

/** User + system CPU seconds of one process, its reaped children included; 0 once it is gone. */
export function cpuSeconds(pid: number): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const x = f.slice(f.lastIndexOf(')') + 2).split(' ')
    return (Number(x[11]) + Number(x[12]) + Number(x[13]) + Number(x[14])) / 100
  } catch {
    return 0
  }
}

export const treeRssMb = (root: number): number => processTree(root).reduce((a, p) => a + rssMb(p), 0)
export const treeCpuSeconds = (root: number): number => processTree(root).reduce((a, p) => a + cpuSeconds(p), 0)

/** Samples the peak RSS of `root` alone and of its whole tree every `everyMs` until `stop()`. */
export function sampleRssPeaks(root: number, everyMs = 25): { readonly tree: number; readonly main: number; stop: () => void } {
  const peaks = { tree: 0, main: 0 }
  const timer = setInterval(() => {
    peaks.tree = Math.max(peaks.tree, treeRssMb(root))
    peaks.main = Math.max(peaks.main, rssMb(root))
  }, everyMs)
  return {
    get tree() {
      return peaks.tree
    },
    get main() {
      return peaks.main
    },
    stop: () => clearInterval(timer),
  }
}
