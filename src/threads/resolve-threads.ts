import type { CpuQuota } from './read-cpu-quota.js'

/** One resolved number and where it came from (an env var, or the rule that derived it). */
export interface Resolved {
  value: number
  source: string
}

/** The thread and slot counts the service runs with, each with its origin. */
export interface ThreadPlan {
  cpu: {
    /** The CPU budget: min(quota rounded up, available parallelism). */
    cores: number
    source: string
    /** The quota that applied (CPU_LIMIT or the cgroup's), null when there is none. */
    quotaCores: number | null
    /** os.availableParallelism(): the cores of the node, or of the cpuset. */
    availableParallelism: number
  }
  decodeSlots: Resolved
  ortIntraOpThreads: Resolved
  uvThreadpoolSize: Resolved
}

/** The env vars that decide the plan (0: derive from the CPU budget). */
export interface ThreadKnobs {
  CPU_LIMIT: number
  DECODE_CONCURRENCY: number
  ORT_INTRA_OP_THREADS: number
  UV_THREADPOOL_SIZE: number
  INFERENCE_THREAD: 'worker' | 'main'
  /** The models the service loads: with INFERENCE_THREAD=worker each has a session thread. */
  models: readonly string[]
}

export interface HostCpu {
  quota: CpuQuota | undefined
  availableParallelism: number
  /**
   * The size libuv's pool already started with, when it has (a process started through
   * an ES module entry, or tsx): it cannot change any more, so that is what is reported.
   */
  uvPoolStarted?: number
}

/** libuv's own default pool size. */
export const LIBUV_DEFAULT_POOL = 4
/** Pool threads kept beyond the decode slots, so fs calls and dns lookups of URL fetches never queue behind decodes. */
export const UV_POOL_HEADROOM = 2

/**
 * The one rule for thread counts. The CPU budget is the quota (CPU_LIMIT, else the
 * cgroup's) rounded up, capped by the available parallelism; os.availableParallelism()
 * alone counts the node's cores, not the pod's CPU limit. Decode slots and ONNX Runtime's
 * intra-op threads default to the budget; libuv's pool to the decode slots plus headroom
 * (sharp runs each decode on a pool thread), never below libuv's default.
 */
export function resolveThreads(knobs: ThreadKnobs, host: HostCpu): ThreadPlan {
  const ap = host.availableParallelism
  const quota =
    knobs.CPU_LIMIT > 0
      ? { cores: knobs.CPU_LIMIT, source: 'CPU_LIMIT' }
      : host.quota && host.quota.cores !== null
        ? { cores: host.quota.cores, source: `${host.quota.version} ${host.quota.file}` }
        : undefined
  const rounded = quota ? Math.max(1, Math.ceil(quota.cores - 1e-9)) : Infinity
  const cpu =
    quota && rounded <= ap
      ? { cores: rounded, source: quota.source, quotaCores: quota.cores, availableParallelism: ap }
      : { cores: ap, source: 'available parallelism', quotaCores: quota?.cores ?? null, availableParallelism: ap }
  const budget = (override: number, name: string): Resolved => (override > 0 ? { value: override, source: name } : { value: cpu.cores, source: 'cpu budget' })
  const decodeSlots = budget(knobs.DECODE_CONCURRENCY, 'DECODE_CONCURRENCY')
  const uvThreadpoolSize: Resolved =
    host.uvPoolStarted !== undefined
      ? { value: host.uvPoolStarted, source: 'already started (an ES module entry loads before it can be sized; start dist/main.cjs)' }
      : knobs.UV_THREADPOOL_SIZE > 0
        ? { value: knobs.UV_THREADPOOL_SIZE, source: 'UV_THREADPOOL_SIZE' }
        : { value: Math.max(LIBUV_DEFAULT_POOL, decodeSlots.value + UV_POOL_HEADROOM), source: `decode slots + ${UV_POOL_HEADROOM}` }
  return { cpu, decodeSlots, ortIntraOpThreads: intraOpThreads(knobs, cpu.cores), uvThreadpoolSize }
}

/**
 * On the event loop the sessions run one after the other, so each may use the whole
 * budget. On worker threads they run at once, so the budget is shared out: two models on
 * 2 cores get one thread each, which also leaves ONNX Runtime no parallel section whose
 * barrier would wait on a thread preempted by a decode.
 */
function intraOpThreads(knobs: ThreadKnobs, cores: number): Resolved {
  if (knobs.ORT_INTRA_OP_THREADS > 0) return { value: knobs.ORT_INTRA_OP_THREADS, source: 'ORT_INTRA_OP_THREADS' }
  if (knobs.INFERENCE_THREAD === 'main' || knobs.models.length <= 1) return { value: cores, source: 'cpu budget' }
  const n = knobs.models.length
  return { value: Math.max(1, Math.floor(cores / n)), source: `cpu budget / ${n} models` }
}
