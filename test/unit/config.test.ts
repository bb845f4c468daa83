import t from 'tap'
import { ConfigError, loadConfig, parseCombinedWeights } from '../../src/config/load.js'

t.test('defaults', async (t) => {
  const c = loadConfig({})
  t.equal(c.PORT, 8080)
  t.same(c.models, ['aesthetic', 'technical'])
  t.same(c.executionProviders, ['cpu'])
  t.same(c.combinedWeights, { aesthetic: 0.6, technical: 0.4 })
  t.ok(Object.isFrozen(c) && Object.isFrozen(c.models), 'config is deep-frozen')
})

t.test('environment strings are converted and lists parsed', async (t) => {
  const c = loadConfig({ PORT: '9000', BATCH_MAX_WAIT_MS: '1.5', EXECUTION_PROVIDERS: 'cuda,cpu', URL_ALLOWLIST: '10.0.0.0/8, images.local', UNRELATED: 'x' })
  t.equal(c.PORT, 9000)
  t.equal(c.BATCH_MAX_WAIT_MS, 1.5)
  t.same(c.executionProviders, ['cuda', 'cpu'])
  t.same(c.urlAllowlist, ['10.0.0.0/8', 'images.local'])
})

t.test('a bad value names the variable, the rule and what arrived', async (t) => {
  t.throws(() => loadConfig({ PORT: 'eighty' }), new ConfigError('x'))
  const err = (() => {
    try {
      loadConfig({ PORT: 'eighty', EXECUTION_PROVIDERS: 'tpu' })
    } catch (e) {
      return e as Error
    }
  })()
  t.match(err?.message, /PORT: .*got "eighty"/)
  t.match(err?.message, /EXECUTION_PROVIDERS: .*got "tpu"/)
  t.throws(() => loadConfig({ BATCH_MAX_SIZE: '0' }), /BATCH_MAX_SIZE: Expected integer to be greater or equal to 1/)
  t.throws(() => loadConfig({ COMBINED_WEIGHTS: 'aesthetic=abc' }), /COMBINED_WEIGHTS/)
})

t.test('docs/configuration.md carries the configuration table generated from the schema (npx tsx scripts/config-table.ts)', async (t) => {
  const { readFileSync } = await import('node:fs')
  const { join } = await import('node:path')
  const { projectRoot } = await import('../helpers/paths.js')
  const { configTable } = await import('../helpers/config-table.js')
  const readme = readFileSync(join(projectRoot, 'docs', 'configuration.md'), 'utf8')
  t.ok(readme.includes(configTable()), 'docs/configuration.md table is up to date')
})

t.test('COMBINED_WEIGHTS and calibrate --weights share one grammar (parseCombinedWeights)', async (t) => {
  t.same(parseCombinedWeights('aesthetic=0.6,technical=.4'), { aesthetic: 0.6, technical: 0.4 })
  t.throws(() => parseCombinedWeights('aesthetic'), /expected id=weight pairs/)
  t.throws(() => parseCombinedWeights('aesthetic=0.6, technical=0.4'), /expected id=weight pairs/, 'no spaces, as in the setting')
  t.throws(() => parseCombinedWeights('aesthetic=1.2.3'), /weight of aesthetic must be a number >= 0 \(got "1.2.3"\)/)
  t.throws(() => loadConfig({ COMBINED_WEIGHTS: 'aesthetic=1.2.3' }), /COMBINED_WEIGHTS: weight of aesthetic must be a number/)
})
