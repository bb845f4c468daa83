import t from 'tap'
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { metricSample } from '../helpers/metrics.js'
import { testModelsDir } from '../helpers/models.js'
import { samplePhotos } from '../helpers/paths.js'
import { startTestService } from '../helpers/service.js'

// The model's fingerprint is in the key: after a hot reload to a new version, the old
// version's scores are not served; only the model that changed runs again.

t.test('a reloaded model misses the cache; the unchanged one still hits', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'nima-cache-reload-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const models = join(dir, 'models')
  cpSync(await testModelsDir(), models, { recursive: true, dereference: true })
  const [baseVersion] = readdirSync(join(models, 'aesthetic')) as [string]
  const svc = await startTestService({ MODELS_DIR: models })
  t.teardown(() => svc.server.shutdown())
  const photo = readFileSync(samplePhotos()[0]!)
  const score = async () => (await (await fetch(`${svc.url}/score`, { method: 'POST', headers: { 'content-type': 'image/jpeg' }, body: photo })).json()) as Record<string, any>
  const scored = async (model: string) => metricSample(await (await fetch(`${svc.url}/metrics`)).text(), 'nima_images_scored_total', `model="${model}"`)

  const first = await score()
  t.same((await score()).cache, { result: 'memory' })

  // The same weights under a new version: a new fingerprint all the same.
  const to = join(models, 'aesthetic', `${baseVersion}-b`)
  cpSync(join(models, 'aesthetic', baseVersion), to, { recursive: true })
  const manifest = JSON.parse(readFileSync(join(to, 'manifest.json'), 'utf8'))
  manifest.version = `${baseVersion}-b`
  manifest.provenance.createdAt = new Date(Date.now() + 1000).toISOString()
  writeFileSync(join(to, 'manifest.json'), JSON.stringify(manifest, null, 2))
  const report = await svc.server.models.reload('http')
  t.equal(report.outcome, 'reloaded')

  const after = await score()
  t.same(after.cache, { result: 'miss' }, 'the new version is computed')
  t.equal(after.models.aesthetic.version, `${baseVersion}-b`)
  t.equal(await scored('aesthetic'), 2, 'aesthetic ran again')
  t.equal(await scored('technical'), 1, 'technical (unchanged) came from the cache')
  t.same(after.scores.technical, first.scores.technical)
  t.same((await score()).cache, { result: 'memory' })
})
