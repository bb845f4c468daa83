import { availableParallelism } from 'node:os'
import { readCpuQuota } from './read-cpu-quota.js'
import { LIBUV_DEFAULT_POOL, resolveThreads, type ThreadKnobs, type ThreadPlan } from './resolve-threads.js'

/**
 * The thread plan of this process: reads the cgroup quota under CGROUP_ROOT and the
 * available parallelism, then applies the one rule. `uvPool` says whether libuv's pool
 * is still to be sized ('to size', the CommonJS entry) or already running (any ES module
 * entry: Node's ES module loader reads files asynchronously, which starts the pool).
 */
export function planThreads(config: ThreadKnobs & { CGROUP_ROOT: string }, uvPool: 'to size' | 'started', env: NodeJS.ProcessEnv = process.env): ThreadPlan {
  return resolveThreads(config, {
    quota: readCpuQuota(config.CGROUP_ROOT),
    availableParallelism: availableParallelism(),
    ...(uvPool === 'started' ? { uvPoolStarted: poolSizeFromEnv(env['UV_THREADPOOL_SIZE']) } : {}),
  })
}

/** What libuv made of UV_THREADPOOL_SIZE (unset: 4; atoi() of it, 0 read as 1; capped at 1024). */
function poolSizeFromEnv(value: string | undefined): number {
  if (value === undefined) return LIBUV_DEFAULT_POOL
  const n = Number.parseInt(value, 10)
  return Math.min(1024, Math.max(1, Number.isNaN(n) ? 1 : n))
}
