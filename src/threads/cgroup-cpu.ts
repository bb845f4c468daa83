/**
 * Pure parsers for the kernel's CPU-quota files. A quota is a number of CPUs (fractions
 * allowed: "150000 100000" is 1.5), or null when the group may use every CPU.
 *
 * cgroup v2: `cpu.max` holds "<quota> <period>" in microseconds, quota "max" = no limit.
 * cgroup v1: `cpu.cfs_quota_us` (-1 = no limit) and `cpu.cfs_period_us`, one number each.
 * A malformed file throws a RangeError quoting what it held: the kernel never writes one,
 * so it means the path points somewhere unexpected and the operator should know.
 */

export function parseCpuMax(text: string): number | null {
  const fields = text.trim().split(/\s+/)
  const [quota, period = '100000'] = fields
  if (fields.length > 2 || quota === undefined || quota === '') throw new RangeError(`cpu.max: expected "<quota|max> <period>", got ${JSON.stringify(text)}`)
  if (quota === 'max') return null
  return ratio(quota, period, 'cpu.max', text)
}

export function parseCfsQuota(quotaText: string, periodText: string): number | null {
  const quota = quotaText.trim()
  if (quota === '-1') return null
  return ratio(quota, periodText.trim(), 'cpu.cfs_quota_us/cpu.cfs_period_us', `${quotaText.trim()} ${periodText.trim()}`)
}

function ratio(quota: string, period: string, file: string, raw: string): number {
  const q = /^\d+$/.test(quota) ? Number(quota) : NaN
  const p = /^\d+$/.test(period) ? Number(period) : NaN
  if (!(q > 0) || !(p > 0)) throw new RangeError(`${file}: expected a positive quota and period in microseconds, got ${JSON.stringify(raw)}`)
  return q / p
}

/** Where this process sits in each hierarchy, from /proc/self/cgroup. */
export interface ProcCgroup {
  /** The cgroup v2 path ("0::/kubepods.slice/..."), when the unified hierarchy is mounted. */
  unified?: string
  /** The cgroup v1 path of the cpu controller ("4:cpu,cpuacct:/docker/..."). */
  cpu?: string
}

export function parseProcCgroup(text: string): ProcCgroup {
  const out: ProcCgroup = {}
  for (const line of text.split('\n')) {
    const m = /^(\d+):([^:]*):(.*)$/.exec(line.trim())
    if (!m) continue
    const [, id, controllers, path] = m as unknown as [string, string, string, string]
    if (id === '0' && controllers === '') out.unified = path
    else if (controllers.split(',').includes('cpu')) out.cpu = path
  }
  return out
}

/**
 * The folders to read from `mountPoint` down to the group at `path`, outermost first. A
 * pod's limit sits on the pod's group and the container's on its own: the smallest wins.
 * Inside a container with its own cgroup namespace the mount root already is the
 * container's group and `path` is "/", so this is just the mount root.
 */
export function groupChain(mountPoint: string, path: string | undefined): string[] {
  const parts = (path ?? '/').split('/').filter((p) => p.length > 0 && p !== '..' && p !== '.')
  const chain = [mountPoint]
  for (const part of parts) chain.push(`${chain.at(-1)!}/${part}`)
  return chain
}
