import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { Ajv } from 'ajv'
import { parse } from 'yaml'
import { KEYED_ROUTES, openapiYaml } from '../helpers/openapi.js'
import { projectRoot, sharedImages } from '../helpers/paths.js'
import { startTestService, startUpstream } from '../helpers/service.js'

const committed = readFileSync(join(projectRoot, 'openapi.yaml'), 'utf8')
const doc = parse(committed)

t.test('openapi.yaml is what the route schemas generate (run `npm run openapi` after changing them)', async (t) => {
  t.equal(committed, await openapiYaml())
})

t.test('real responses of the running service validate against the documented schemas', async (t) => {
  const svc = await startTestService({ LOG_LEVEL: 'silent', LABELS_DB: ':memory:' })
  t.teardown(() => svc.server.shutdown())
  const up = await startUpstream((_req, res) => res.writeHead(200).end(readFileSync(join(sharedImages, 'idealo/42039.jpg'))))
  t.teardown(up.close)

  const documented = new Set(Object.entries(doc.paths as Record<string, object>).flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`)))
  const served = new Set(svc.server.app.apiRoutes.map((r) => r.replace(/:(\w+)/g, '{$1}')))
  t.ok(served.has('POST /score') && served.has('POST /rank'), `routes: ${[...served].join(', ')}`)
  t.same([...documented].filter((r) => !KEYED_ROUTES.includes(r)).sort(), [...served].sort(), 'documented routes = served routes (those needing API_KEYS aside)')

  const ajv = new Ajv({ strict: false, validateFormats: false })
  ajv.addSchema({ ...doc, $id: 'openapi' })
  const schemaFor = (method: string, path: string, status: number) => {
    const responses = doc.paths[path][method].responses
    const entry = responses[String(status)] ?? responses[`${String(status)[0]}XX`] ?? responses[`${String(status)[0]}xx`]
    t.ok(entry, `${method.toUpperCase()} ${path} documents status ${status}`)
    return entry?.content?.['application/json']?.schema
  }
  const rewriteRefs = (s: unknown): unknown =>
    JSON.parse(JSON.stringify(s).replaceAll('"#/components/', '"openapi#/components/'))

  const oipInfer = (b64: string) => JSON.stringify({ inputs: [{ name: 'image', datatype: 'BYTES', shape: [1], data: [b64] }] })
  const jpegB64 = readFileSync(join(sharedImages, 'idealo/42040.jpg')).toString('base64')
  // [method, url, request, the documented path when the url fills in its parameters]
  const cases: [string, string, RequestInit | undefined, string?][] = [
    ['get', '/healthz', undefined],
    ['get', '/readyz', undefined],
    ['get', '/models', undefined],
    ['post', '/score', { method: 'POST', body: readFileSync(join(sharedImages, 'idealo/42040.jpg')), headers: { 'content-type': 'image/jpeg' } }],
    ['post', '/score', { method: 'POST', body: 'nope', headers: { 'content-type': 'image/jpeg' } }],
    ['post', '/score', { method: 'POST', body: '{"url":"http://10.0.0.1/"}', headers: { 'content-type': 'application/json' } }],
    ['post', '/rank', { method: 'POST', body: JSON.stringify({ images: [{ url: `${up.url}/a.jpg`, id: 'a' }, { url: 'http://10.0.0.1/' }] }), headers: { 'content-type': 'application/json' } }],
    ['post', '/rank', { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } }],
    ['post', '/explain', { method: 'POST', body: readFileSync(join(sharedImages, 'idealo/42040.jpg')), headers: { 'content-type': 'image/jpeg' } }],
    ['post', '/explain?logits=true&models=aesthetic', { method: 'POST', body: readFileSync(join(sharedImages, 'idealo/42040.jpg')), headers: { 'content-type': 'image/jpeg' } }],
    ['post', '/explain', { method: 'POST', body: '{"url":"http://10.0.0.1/"}', headers: { 'content-type': 'application/json' } }],
    ['get', '/v2', undefined],
    ['get', '/v2/health/live', undefined],
    ['get', '/v2/health/ready', undefined],
    ['get', '/v2/models/aesthetic', undefined, '/v2/models/{name}'],
    ['get', '/v2/models/nope', undefined, '/v2/models/{name}'],
    ['get', '/v2/models/technical/ready', undefined, '/v2/models/{name}/ready'],
    ['post', '/v2/models/aesthetic/infer', { method: 'POST', body: oipInfer(jpegB64), headers: { 'content-type': 'application/json' } }, '/v2/models/{name}/infer'],
    ['post', '/v2/models/aesthetic/infer', { method: 'POST', body: oipInfer('***'), headers: { 'content-type': 'application/json' } }, '/v2/models/{name}/infer'],
  ]
  for (const [method, url, init, template] of cases) {
    const res = await fetch(svc.url + url, init)
    const body = await res.json()
    const path = template ?? url.split('?')[0]!
    const schema = schemaFor(method, path, res.status)
    const validate = ajv.compile(rewriteRefs(schema) as object)
    t.ok(validate(body), `${method.toUpperCase()} ${path} → ${res.status} matches the document ${JSON.stringify(validate.errors ?? [])}`)
  }
})
