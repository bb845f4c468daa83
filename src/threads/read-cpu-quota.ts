import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { ConfigError } from '../config/load.js'
import { groupChain, parseCfsQuota, parseCpuMax, parseProcCgroup } from './cgroup-cpu.js'

/** The CPU quota found in the cgroup filesystem. */
export interface CpuQuota {
  /** CPUs the group may use (1.5 for "150000 100000"); null: the files say "no limit". */
  cores: number | null
  /** 'cgroup v2' (cpu.max) or 'cgroup v1' (cpu.cfs_quota_us). */
  version: 'cgroup v2' | 'cgroup v1'
  /** The file that set it (the tightest along the group's chain). */
  file: string
}

/**
 * Reads the CPU quota of this process's cgroup under `root` (normally /sys/fs/cgroup):
 * v2's cpu.max first, then v1's cpu (or cpu,cpuacct) controller, each along the chain
 * from the mount root down to the group /proc/self/cgroup names, keeping the tightest.
 * undefined when no quota file exists (not Linux, or no cgroup mounted).
 *
 * Synchronous on purpose: it runs before UV_THREADPOOL_SIZE is set, and an async fs call
 * would start libuv's pool at its default size.
 */
export function readCpuQuota(root: string, procCgroupFile = '/proc/self/cgroup'): CpuQuota | undefined {
  const self = parseProcCgroup(readOr(procCgroupFile) ?? '')
  const v2 = tightest(groupChain(root, self.unified), (dir) => {
    const text = readOr(join(dir, 'cpu.max'))
    return text === undefined ? undefined : { cores: parseCpuMax(text), file: join(dir, 'cpu.max') }
  })
  if (v2) return { ...v2, version: 'cgroup v2' }
  for (const controller of ['cpu', 'cpu,cpuacct']) {
    const mount = join(root, controller)
    if (!existsSync(mount)) continue
    const v1 = tightest(groupChain(mount, self.cpu), (dir) => {
      const quota = readOr(join(dir, 'cpu.cfs_quota_us'))
      const period = readOr(join(dir, 'cpu.cfs_period_us'))
      return quota === undefined || period === undefined ? undefined : { cores: parseCfsQuota(quota, period), file: join(dir, 'cpu.cfs_quota_us') }
    })
    if (v1) return { ...v1, version: 'cgroup v1' }
  }
  return undefined
}

type Found = { cores: number | null; file: string }

/** The smallest limit along the chain (null = unlimited loses to any number). */
function tightest(chain: readonly string[], read: (dir: string) => Found | undefined): Found | undefined {
  let best: Found | undefined
  for (const dir of chain) {
    let found: Found | undefined
    try {
      found = read(dir)
    } catch (err) {
      throw new ConfigError(`reading the CPU quota in ${dir}: ${(err as Error).message} (set CPU_LIMIT, or CGROUP_ROOT to where the cgroup filesystem is mounted)`)
    }
    if (!found) continue
    if (!best || (found.cores !== null && (best.cores === null || found.cores < best.cores))) best = found
  }
  return best
}

function readOr(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8')
  } catch {
    return undefined
  }
}
