import { join } from 'node:path'
import t from 'tap'
import { readCpuQuota } from '../../src/threads/read-cpu-quota.js'
import { resolveThreads, type ThreadKnobs } from '../../src/threads/resolve-threads.js'
import { projectRoot } from '../helpers/paths.js'

const fixtures = join(projectRoot, 'test', 'threads', 'fixtures')
const root = (name: string) => join(fixtures, name)
const proc = (name: string) => join(fixtures, name)
const none: ThreadKnobs = { CPU_LIMIT: 0, DECODE_CONCURRENCY: 0, ORT_INTRA_OP_THREADS: 0, UV_THREADPOOL_SIZE: 0, INFERENCE_THREAD: 'main', models: ['aesthetic', 'technical'] }

t.test('readCpuQuota: v2 and v1 fixtures, the tightest along the chain, nothing when no file', async (t) => {
  t.same(readCpuQuota(root('v2-two-cpus'), proc('proc-cgroup-v2-root')), { cores: 2, version: 'cgroup v2', file: join(root('v2-two-cpus'), 'cpu.max') })
  t.same(readCpuQuota(root('v2-unlimited'), proc('proc-cgroup-v2-root')), { cores: null, version: 'cgroup v2', file: join(root('v2-unlimited'), 'cpu.max') })
  t.same(readCpuQuota(root('v2-nested'), proc('proc-cgroup-v2-pod')), { cores: 3, version: 'cgroup v2', file: join(root('v2-nested'), 'kubepods.slice', 'cpu.max') }, 'a parent limit applies to the group below it')
  t.same(readCpuQuota(root('v2-nested'), proc('proc-cgroup-v2-root')), { cores: null, version: 'cgroup v2', file: join(root('v2-nested'), 'cpu.max') }, 'a sibling group is not read')
  t.same(readCpuQuota(root('v1-one-and-a-half'), proc('proc-cgroup-v1-docker')), { cores: 1.5, version: 'cgroup v1', file: join(root('v1-one-and-a-half'), 'cpu', 'cpu.cfs_quota_us') }, 'host path in /proc/self/cgroup, container view at the mount root')
  t.same(readCpuQuota(root('v1-unlimited'), proc('proc-cgroup-v1-docker')), { cores: null, version: 'cgroup v1', file: join(root('v1-unlimited'), 'cpu,cpuacct', 'cpu.cfs_quota_us') })
  t.equal(readCpuQuota(join(fixtures, 'no-such-dir'), proc('no-such-file')), undefined)
  t.throws(() => readCpuQuota(root('v2-malformed'), proc('proc-cgroup-v2-root')), { name: 'ConfigError', message: `reading the CPU quota in ${root('v2-malformed')}: cpu.max: expected "<quota|max> <period>", got "two cpus please\\n" (set CPU_LIMIT, or CGROUP_ROOT to where the cgroup filesystem is mounted)` })
})

t.test('resolveThreads: the budget is min(quota rounded up, available parallelism)', async (t) => {
  const quota = (cores: number | null) => ({ cores, version: 'cgroup v2' as const, file: '/sys/fs/cgroup/cpu.max' })
  const two = resolveThreads(none, { quota: quota(2), availableParallelism: 8 })
  t.same(two, {
    cpu: { cores: 2, source: 'cgroup v2 /sys/fs/cgroup/cpu.max', quotaCores: 2, availableParallelism: 8 },
    decodeSlots: { value: 2, source: 'cpu budget' },
    ortIntraOpThreads: { value: 2, source: 'cpu budget' },
    uvThreadpoolSize: { value: 4, source: 'decode slots + 2' },
  }, 'an 8-core node, a 2-CPU pod: 2, not 8')
  t.equal(resolveThreads(none, { quota: quota(1.5), availableParallelism: 8 }).cpu.cores, 2, '1.5 rounds up')
  t.equal(resolveThreads(none, { quota: quota(0.5), availableParallelism: 8 }).cpu.cores, 1, 'half a CPU is still one thread')
  t.same(resolveThreads(none, { quota: quota(16), availableParallelism: 4 }).cpu, { cores: 4, source: 'available parallelism', quotaCores: 16, availableParallelism: 4 }, 'a cpuset smaller than the quota wins')
  t.same(resolveThreads(none, { quota: quota(null), availableParallelism: 6 }).cpu, { cores: 6, source: 'available parallelism', quotaCores: null, availableParallelism: 6 })
  t.same(resolveThreads(none, { quota: undefined, availableParallelism: 6 }).cpu, { cores: 6, source: 'available parallelism', quotaCores: null, availableParallelism: 6 })
  const eight = resolveThreads(none, { quota: undefined, availableParallelism: 8 })
  t.same(eight.uvThreadpoolSize, { value: 10, source: 'decode slots + 2' }, 'eight decode slots need a pool of ten, not libuv\'s four')
})

t.test('resolveThreads: CPU_LIMIT beats the cgroup; each knob beats the budget', async (t) => {
  const cgroup = { cores: 4, version: 'cgroup v1' as const, file: '/q' }
  const limited = resolveThreads({ ...none, CPU_LIMIT: 1.2 }, { quota: cgroup, availableParallelism: 8 })
  t.same(limited.cpu, { cores: 2, source: 'CPU_LIMIT', quotaCores: 1.2, availableParallelism: 8 })
  const knobs = resolveThreads({ ...none, DECODE_CONCURRENCY: 3, ORT_INTRA_OP_THREADS: 1, UV_THREADPOOL_SIZE: 16 }, { quota: cgroup, availableParallelism: 8 })
  t.same(knobs.decodeSlots, { value: 3, source: 'DECODE_CONCURRENCY' })
  t.same(knobs.ortIntraOpThreads, { value: 1, source: 'ORT_INTRA_OP_THREADS' })
  t.same(knobs.uvThreadpoolSize, { value: 16, source: 'UV_THREADPOOL_SIZE' })
  t.same(resolveThreads({ ...none, DECODE_CONCURRENCY: 5 }, { quota: cgroup, availableParallelism: 8 }).uvThreadpoolSize, { value: 7, source: 'decode slots + 2' }, 'the pool follows the decode slots')
  t.same(
    resolveThreads(none, { quota: cgroup, availableParallelism: 8, uvPoolStarted: 4 }).uvThreadpoolSize,
    { value: 4, source: 'already started (an ES module entry loads before it can be sized; start dist/main.cjs)' },
    'a pool that already runs is reported as it is',
  )
})
