/**
 * Hot reload (issue #18): under continuous /score and /rank load, a new model version
 * installed in MODELS_DIR is swapped in by POST /admin/models/reload with no failed
 * request; responses switch to the new version, the old scorer is released once the
 * requests holding it have finished, and a version that cannot load leaves the old one
 * serving and says why.
 */
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createHash } from 'node:crypto'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { testModelsDir } from '../helpers/models.js'
import { samplePhotos } from '../helpers/paths.js'
import { startTestService, startUpstream } from '../helpers/service.js'

const dir = mkdtempSync(join(tmpdir(), 'nima-reload-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))
const models = join(dir, 'models')
cpSync(await testModelsDir(), models, { recursive: true, dereference: true })
const [baseVersion] = readdirSync(join(models, 'aesthetic')) as [string]

/** Installs aesthetic/<version>: the base files, or `onnx` bytes, with a newer createdAt. */
function install(version: string, onnx?: Buffer): void {
  const to = join(models, 'aesthetic', version)
  cpSync(join(models, 'aesthetic', baseVersion), to, { recursive: true })
  const manifest = JSON.parse(readFileSync(join(to, 'manifest.json'), 'utf8'))
  if (onnx) {
    writeFileSync(join(to, manifest.file), onnx)
    manifest.sha256 = createHash('sha256').update(onnx).digest('hex')
  }
  manifest.version = version
  manifest.provenance.createdAt = new Date(Date.now() + 1000).toISOString()
  writeFileSync(join(to, 'manifest.json'), JSON.stringify(manifest, null, 2))
}

const KEY = 'reload-test-key'
const auth = { authorization: `Bearer ${KEY}` }
// The score cache off: the load sends one photo again and again, and the swap must happen
// under inference, not cache hits (test/cache/model-reload.test.ts covers the cache across a reload).
const svc = await startTestService({ MODELS_DIR: models, API_KEYS: KEY, SCORE_CACHE: 'off' })
t.teardown(() => svc.server.shutdown())
const photo = readFileSync(samplePhotos()[0]!)
const upstream = await startUpstream((_req, res) => res.writeHead(200).end(photo))
t.teardown(upstream.close)

const reload = async () => {
  const r = await fetch(`${svc.url}/admin/models/reload`, { method: 'POST', headers: auth })
  return { status: r.status, body: (await r.json()) as any }
}

t.test('a new version swaps in under load: no failed request, responses switch, the old scorer is released', async (t) => {
  const old = svc.server.state.scorer!
  // Completion order is not start order: a request holding the old scorer may finish
  // after one that started later on the new, so each records when it began and ended.
  const seen: { status: number; version: string | undefined; start: number; end: number }[] = []
  let stop = false
  const worker = async (i: number) => {
    for (let n = 0; !stop; n++) {
      const start = performance.now()
      const rank = (i + n) % 2 === 1
      const r = rank
        ? await fetch(`${svc.url}/rank`, { method: 'POST', headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ images: [{ url: `${upstream.url}/a.jpg` }, { url: `${upstream.url}/b.jpg` }] }) })
        : await fetch(`${svc.url}/score`, { method: 'POST', headers: { ...auth, 'content-type': 'image/jpeg' }, body: photo })
      const body = (await r.json()) as any
      seen.push({ status: r.status, version: body.models?.aesthetic?.version, start, end: performance.now() })
    }
  }
  const load = Promise.all([0, 1, 2, 3].map(worker))
  // Counted, not timed: a busy machine may take seconds for the first answers.
  while (seen.length < 4) await sleep(20)
  install(`${baseVersion}-b`)
  const reloadStart = performance.now()
  const r = await reload()
  const reloadEnd = performance.now()
  t.equal(r.status, 200)
  t.match(r.body, { trigger: 'http', outcome: 'reloaded', changed: [{ id: 'aesthetic', from: baseVersion, to: `${baseVersion}-b` }] })
  while (seen.filter((s) => s.start > reloadEnd).length < 4) await sleep(20)
  stop = true
  await load

  t.ok(seen.length > 10, `${seen.length} requests during the test`)
  t.same(seen.filter((s) => s.status !== 200), [], 'no request failed')
  const before = seen.filter((s) => s.end < reloadStart)
  const after = seen.filter((s) => s.start > reloadEnd)
  t.ok(before.length > 0 && after.length > 0, `${before.length} requests ended before the reload, ${after.length} began after it`)
  t.ok(before.every((s) => s.version === baseVersion), 'requests that ended before the reload saw the old version')
  t.ok(after.every((s) => s.version === `${baseVersion}-b`), 'requests that began after it saw only the new one')
  for (let i = 0; i < 250 && !old.disposed; i++) await sleep(20)
  t.ok(old.disposed, 'the old scorer (sessions, decode processes) is released once nothing holds it')
  t.not(svc.server.state.scorer, old)

  const m = (await (await fetch(`${svc.url}/models`, { headers: auth })).json()) as any
  t.equal(m.models.find((x: any) => x.id === 'aesthetic').version, `${baseVersion}-b`)
  t.match(m.reload, { outcome: 'reloaded' })
  const metrics = await (await fetch(`${svc.url}/metrics`)).text()
  t.match(metrics, new RegExp(`nima_model_info\\{model="aesthetic",version="${baseVersion}-b"`))
  t.notMatch(metrics, new RegExp(`nima_model_info\\{model="aesthetic",version="${baseVersion}"`), 'the old version is no longer reported')
  t.match(metrics, /nima_model_reloads_total\{outcome="reloaded"\} 1/)
  t.equal((await (await fetch(`${svc.url}/readyz`)).status), 200, 'ready throughout')
})

t.test('nothing new: unchanged; a version that cannot load: the old one keeps serving and says why', async (t) => {
  t.match((await reload()).body, { outcome: 'unchanged', changed: [] })
  const serving = svc.server.state.scorer!
  install(`${baseVersion}-c`, Buffer.from('not an onnx model'))
  const r = await reload()
  t.equal(r.status, 503)
  t.equal(r.body.error.code, 'NIMA_RELOAD_FAILED')
  t.match(r.body.error.message, /the previous models keep serving: /)
  t.equal(svc.server.state.scorer, serving, 'the previous scorer is still in service')
  t.notOk(serving.disposed)
  const s = await fetch(`${svc.url}/score`, { method: 'POST', headers: { ...auth, 'content-type': 'image/jpeg' }, body: photo })
  t.equal(s.status, 200)
  t.equal(((await s.json()) as any).models.aesthetic.version, `${baseVersion}-b`)
  const m = (await (await fetch(`${svc.url}/models`, { headers: auth })).json()) as any
  t.match(m.reload, { outcome: 'failed', error: /./ })
  t.match(await (await fetch(`${svc.url}/metrics`)).text(), /nima_model_reloads_total\{outcome="failed"\} 1/)
})

t.test('the reload route needs an API key, and exists only when keys are configured', async (t) => {
  t.equal((await fetch(`${svc.url}/admin/models/reload`, { method: 'POST' })).status, 401)
  const open = await startTestService()
  t.teardown(() => open.server.shutdown())
  const r = await fetch(`${open.url}/admin/models/reload`, { method: 'POST' })
  t.equal(r.status, 404)
})
