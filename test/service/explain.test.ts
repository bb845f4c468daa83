import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import sharp from 'sharp'
import t from 'tap'
import { ensureModels } from '../../src/model-tools/ensure.js'
import { installModel } from '../../src/model-tools/install.js'
import { buildOnnxModel, GRAPH_NAMES } from '../../src/models/onnx-graph.js'
import { onnx } from '../../src/models/onnx-proto.js'
import { syntheticWeights } from '../../src/model-tools/synthetic-weights.js'
import { samplePhotos, sharedImages } from '../helpers/paths.js'
import { startTestService, startUpstream } from '../helpers/service.js'

const photos = samplePhotos()
const svc = await startTestService()
t.teardown(() => svc.server.shutdown())
const upstream = await startUpstream((req, res) => {
  try {
    res.writeHead(200, { 'content-type': 'image/jpeg' }).end(readFileSync(join(sharedImages, decodeURIComponent(req.url!.slice(1)))))
  } catch {
    res.writeHead(404).end()
  }
})
t.teardown(upstream.close)

async function post(path: string, body: RequestInit['body'], headers: Record<string, string> = {}) {
  const res = await fetch(svc.url + path, { method: 'POST', body, headers })
  const type = res.headers.get('content-type') ?? ''
  return { status: res.status, type, json: type.startsWith('application/json') ? ((await res.json()) as any) : undefined, bytes: type.startsWith('image/') ? Buffer.from(await res.arrayBuffer()) : undefined }
}

function upload(path: string): FormData {
  const form = new FormData()
  form.append('image', new Blob([readFileSync(path)]), 'photo')
  return form
}

t.test('JSON: per model a 7×7 score map, and the same distribution /score gives', async (t) => {
  const photo = photos[0]!
  const [explained, scored] = await Promise.all([post('/explain', upload(photo)), post('/score', upload(photo))])
  t.equal(explained.status, 200)
  const body = explained.json
  t.same(Object.keys(body.explanations).sort(), ['aesthetic', 'technical'])
  t.match(body.image.id, /^[0-9a-f]{64}$/)
  t.equal(body.image.id, scored.json.image.id)
  for (const id of ['aesthetic', 'technical']) {
    const e = body.explanations[id]
    t.same([e.scoreMap.length, ...e.scoreMap.map((r: number[]) => r.length)], [7, 7, 7, 7, 7, 7, 7, 7])
    t.same(e.grid, { height: 7, width: 7, cellPixels: { x: 32, y: 32 } })
    t.equal(e.model.synthetic, true)
    t.ok(Math.abs(e.score.mean - scored.json.scores[id].mean) < 1e-5, `${id}: mean as /score (${e.score.mean} vs ${scored.json.scores[id].mean})`)
    t.equal(e.maxAbs, Math.max(...e.scoreMap.flat().map(Math.abs)))
    t.equal(e.logitMaps, undefined, 'logit maps only on request')
  }
})

t.test('logits=true: the identities hold on what the API returns', async (t) => {
  for (const photo of photos.slice(0, 3)) {
    const r = await post('/explain?logits=true&models=aesthetic', readFileSync(photo), { 'content-type': 'application/octet-stream' })
    t.equal(r.status, 200)
    const e = r.json.explanations.aesthetic
    t.equal(e.logitMaps.length, 10)
    const z = e.logitMaps.map((m: number[][], i: number) => m.flat().reduce((a, b) => a + b, 0) / 49 + e.bias[i])
    const top = Math.max(...z)
    const ex = z.map((v: number) => Math.exp(v - top))
    const sum = ex.reduce((a: number, b: number) => a + b, 0)
    const worst = Math.max(...ex.map((v: number, i: number) => Math.abs(v / sum - e.score.distribution[i])))
    t.ok(worst < 1e-5, `softmax(mean Mᵢ + bᵢ) = p: max |Δp| ${worst.toExponential(2)}`)
    const p = e.score.distribution
    const mean = e.score.mean
    let worstS = 0
    for (let y = 0; y < 7; y++)
      for (let x = 0; x < 7; x++) {
        const s = p.reduce((a: number, pi: number, i: number) => a + pi * (i + 1 - mean) * e.logitMaps[i][y][x], 0)
        worstS = Math.max(worstS, Math.abs(s - e.scoreMap[y][x]))
      }
    t.ok(worstS < 1e-9, `S = Σᵢ pᵢ(i − E)·Mᵢ cell by cell: max |Δ| ${worstS.toExponential(2)}`)
  }
})

t.test('a URL, as /score takes it', async (t) => {
  const name = photos[1]!.slice(sharedImages.length + 1)
  const r = await post('/explain?models=technical', JSON.stringify({ url: `${upstream.url}/${encodeURIComponent(name)}` }), { 'content-type': 'application/json' })
  t.equal(r.status, 200)
  t.same(Object.keys(r.json.explanations), ['technical'])
  t.type(r.json.timings.fetchMs, 'number')
})

t.test('format=png: the photo at display size with one panel per model and a legend', async (t) => {
  const photo = photos[0]!
  const r = await post('/explain?format=png', upload(photo))
  t.equal(r.status, 200)
  t.equal(r.type, 'image/png')
  const meta = await sharp(r.bytes!).metadata()
  const source = await sharp(readFileSync(photo)).autoOrient().metadata()
  const w = source.autoOrient?.width ?? source.width!
  const h = source.autoOrient?.height ?? source.height!
  const scale = 512 / Math.max(w, h)
  const panelW = Math.round(w * scale)
  t.ok(Math.abs(meta.width! - (2 * panelW + 8)) <= 2, `two panels side by side (${meta.width} px wide)`)
  t.ok(Math.abs(meta.height! - (Math.round(h * scale) + 64)) <= 2, `photo plus a 64 px legend (${meta.height} px high)`)
  const one = await post('/explain?format=png&models=aesthetic', upload(photo))
  t.ok(Math.abs((await sharp(one.bytes!).metadata()).width! - panelW) <= 1, 'one model, one panel')
})

t.test('bad requests get the usual JSON errors', async (t) => {
  const cases: [string, RequestInit['body'], Record<string, string>, number, string][] = [
    ['/explain', JSON.stringify({}), { 'content-type': 'application/json' }, 400, 'NIMA_INVALID_REQUEST'],
    ['/explain', new FormData(), {}, 400, 'NIMA_MISSING_IMAGE'],
    ['/explain?models=nope', readFileSync(photos[0]!), { 'content-type': 'image/jpeg' }, 400, 'NIMA_UNKNOWN_MODEL'],
    ['/explain?format=gif', readFileSync(photos[0]!), { 'content-type': 'image/jpeg' }, 400, 'NIMA_INVALID_REQUEST'],
    ['/explain?logits=yes', readFileSync(photos[0]!), { 'content-type': 'image/jpeg' }, 400, 'NIMA_INVALID_REQUEST'],
    ['/explain', 'not an image', { 'content-type': 'text/plain' }, 415, 'NIMA_UNSUPPORTED_MEDIA_TYPE'],
    ['/explain', Buffer.from('GIF89a not really'), { 'content-type': 'image/gif' }, 422, 'NIMA_UNDECODABLE_IMAGE'],
  ]
  for (const [path, body, headers, status, code] of cases) {
    const r = await post(path, body, headers)
    t.equal(r.status, status, `${path} ${headers['content-type'] ?? 'multipart'}`)
    t.equal(r.json?.error?.code, code)
    t.type(r.json?.error?.requestId, 'string')
  }
})

t.test('a model file made before the feature-map output still scores, and /explain says how to fix it', async (t) => {
  const dir = t.testdir()
  const model = onnx.ModelProto.decode(buildOnnxModel(syntheticWeights(1007)))
  model.graph!.output = model.graph!.output!.filter((o) => o.name !== GRAPH_NAMES.featureMap)
  await installModel({ dir, id: 'aesthetic', version: 'synthetic-s1007', task: 'aesthetic', onnx: onnx.ModelProto.encode(model).finish(), synthetic: true, provenance: { kind: 'synthetic', seed: 1007 } })
  // Only the technical model is generated: ensure would regenerate the outdated aesthetic one.
  await ensureModels(join(dir, 'tech-only'))
  const { cp } = await import('node:fs/promises')
  await cp(join(dir, 'tech-only', 'technical'), join(dir, 'technical'), { recursive: true })
  const old = await startTestService({ MODELS_DIR: dir })
  t.teardown(() => old.server.shutdown())
  const photo = readFileSync(photos[0]!)
  const score = await fetch(`${old.url}/score`, { method: 'POST', body: photo, headers: { 'content-type': 'image/jpeg' } })
  t.equal(score.status, 200, '/score is unaffected')
  const r = await fetch(`${old.url}/explain`, { method: 'POST', body: photo, headers: { 'content-type': 'image/jpeg' } })
  t.equal(r.status, 409)
  const body = (await r.json()) as any
  t.equal(body.error.code, 'NIMA_EXPLANATION_UNAVAILABLE')
  t.match(body.error.message, /model aesthetic\/synthetic-s1007 was built before the feature-map output existed.*npx nima-serve models ensure/)
  const tech = await fetch(`${old.url}/explain?models=technical`, { method: 'POST', body: photo, headers: { 'content-type': 'image/jpeg' } })
  t.equal(tech.status, 200, 'a model with the output is still explained')
})
