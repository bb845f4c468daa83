import t from 'tap'
import { groupChain, parseCfsQuota, parseCpuMax, parseProcCgroup } from '../../src/threads/cgroup-cpu.js'

t.test('cgroup v2 cpu.max: "<quota> <period>" in CPUs; "max" is no limit', async (t) => {
  t.equal(parseCpuMax('200000 100000\n'), 2)
  t.equal(parseCpuMax('150000 100000'), 1.5)
  t.equal(parseCpuMax('50000 100000'), 0.5)
  t.equal(parseCpuMax('100000 50000'), 2, 'another period')
  t.equal(parseCpuMax('max 100000\n'), null)
  t.equal(parseCpuMax('max'), null, 'period omitted')
  for (const bad of ['', 'two cpus please', '0 100000', '100000 0', '-1 100000', '1.5 100000', '100000 100000 7']) {
    const err = (() => {
      try {
        parseCpuMax(bad)
      } catch (e) {
        return e as Error
      }
      return undefined
    })()
    t.ok(err instanceof RangeError && err.message.startsWith('cpu.max: expected ') && err.message.endsWith(`got ${JSON.stringify(bad)}`), `refuses ${JSON.stringify(bad)}, quoting it`, { message: err?.message })
  }
})

t.test('cgroup v1: cpu.cfs_quota_us / cpu.cfs_period_us; -1 is no limit', async (t) => {
  t.equal(parseCfsQuota('150000\n', '100000\n'), 1.5)
  t.equal(parseCfsQuota('400000', '100000'), 4)
  t.equal(parseCfsQuota('-1\n', '100000\n'), null)
  t.throws(() => parseCfsQuota('lots', '100000'), { name: 'RangeError', message: /cpu\.cfs_quota_us\/cpu\.cfs_period_us: expected a positive quota and period in microseconds, got "lots 100000"/ })
  t.throws(() => parseCfsQuota('100000', ''), RangeError)
})

t.test('/proc/self/cgroup: the unified path and the v1 cpu controller path', async (t) => {
  t.same(parseProcCgroup('0::/kubepods.slice/pod-a\n'), { unified: '/kubepods.slice/pod-a' })
  t.same(parseProcCgroup('12:cpu,cpuacct:/docker/abc\n11:memory:/docker/abc\n2:cpuacct:/x\n0::/\n'), { cpu: '/docker/abc', unified: '/' })
  t.same(parseProcCgroup('1:name=systemd:/\n'), {}, 'no cpu controller, no unified line')
  t.same(parseProcCgroup(''), {})
})

t.test('groupChain: mount root down to the group, outermost first, never above the root', async (t) => {
  t.same(groupChain('/sys/fs/cgroup', '/kubepods.slice/pod-a'), ['/sys/fs/cgroup', '/sys/fs/cgroup/kubepods.slice', '/sys/fs/cgroup/kubepods.slice/pod-a'])
  t.same(groupChain('/sys/fs/cgroup', '/'), ['/sys/fs/cgroup'])
  t.same(groupChain('/sys/fs/cgroup', undefined), ['/sys/fs/cgroup'])
  t.same(groupChain('/r', '/../../etc'), ['/r', '/r/etc'], '".." segments are dropped')
})
