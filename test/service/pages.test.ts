import t from 'tap'
import { parse } from 'yaml'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { projectRoot } from '../helpers/paths.js'
import { startTestService } from '../helpers/service.js'

interface OpenApiDoc {
  servers: { url: string }[]
  security?: object[]
  tags: { name: string; description: string }[]
  components: { securitySchemes?: object }
  paths: Record<string, Record<string, { security?: object[]; tags?: string[] }>>
}

const svc = await startTestService({ API_KEYS: 'sesame', CORS_ORIGINS: 'https://curation.example,http://localhost:3000' })
t.teardown(() => svc.server.shutdown())

t.test('the pages and the API document are public even with API keys; the API is not', async (t) => {
  for (const [path, type] of [
    ['/gallery', 'text/html'],
    ['/gallery/app.js', 'text/javascript'],
    ['/gallery/app.css', 'text/css'],
    ['/gallery/kit.js', 'text/javascript'],
    ['/gallery/icon.svg', 'image/svg+xml'],
    ['/openapi.json', 'application/json'],
    ['/docs', 'text/html'],
  ] as const) {
    const res = await fetch(svc.url + path)
    t.equal(res.status, 200, path)
    t.match(res.headers.get('content-type'), type, path)
    if (path.startsWith('/gallery')) {
      t.match(res.headers.get('content-security-policy'), /img-src 'self' blob: https: http:; .*script-src 'self'/, `${path}: strict CSP, photos from their URLs allowed`)
    }
    await res.arrayBuffer()
  }
  const explain = await fetch(`${svc.url}/explain`, { method: 'POST', body: 'x', headers: { 'content-type': 'image/jpeg' } })
  t.equal(explain.status, 401)
})

t.test('GET /openapi.json is the document openapi.yaml holds (same generator, same schemas)', async (t) => {
  const served = (await (await fetch(`${svc.url}/openapi.json`)).json()) as { paths: Record<string, unknown>; components: { securitySchemes: object } }
  const committed = parse(readFileSync(join(projectRoot, 'openapi.yaml'), 'utf8')) as { paths: Record<string, unknown> }
  // openapi.yaml documents the routes that need LABELS_DB too; this service has none.
  t.ok(Object.keys(served.paths).length >= 6, 'every served route')
  for (const [path, ops] of Object.entries(served.paths)) t.same(ops, committed.paths[path], path)
  t.ok(served.components.securitySchemes, 'a bearer scheme, for the Authorize button of /docs')
})

t.test('/openapi.json: the server is the host it was fetched from; locks only where a key is needed; every route in a named group', async (t) => {
  const keyed = (await (await fetch(`${svc.url}/openapi.json`)).json()) as OpenApiDoc
  t.same(keyed.servers.map((s) => s.url), [svc.url], 'the origin this request used, not a hard-coded localhost:8080')
  const viaLocalhost = (await (await fetch(`${svc.url.replace('127.0.0.1', 'localhost')}/openapi.json`)).json()) as OpenApiDoc
  t.same(viaLocalhost.servers.map((s) => s.url), [svc.url.replace('127.0.0.1', 'localhost')], 'another host name, another server')
  const docsJson = (await (await fetch(`${svc.url}/docs/json`)).json()) as OpenApiDoc
  t.same(docsJson.servers.map((s) => s.url), [svc.url], '/docs/json (swagger-ui plugin) says the same')

  t.same(keyed.security, [{ apiKey: [] }], 'with API_KEYS: the key by default')
  const ops = (doc: OpenApiDoc) => Object.entries(doc.paths).flatMap(([path, methods]) => Object.entries(methods).map(([method, op]) => ({ route: `${method.toUpperCase()} ${path}`, op })))
  for (const { route, op } of ops(keyed)) {
    const open = ['GET /healthz', 'GET /readyz', 'GET /metrics', 'GET /v2/health/live', 'GET /v2/health/ready'].includes(route)
    t.same(op.security, open ? [] : undefined, `${route}: ${open ? 'open, no lock' : 'locked (the document default)'}`)
    t.equal(op.tags?.length, 1, `${route}: in one group (${op.tags})`)
    t.ok(keyed.tags.some((tag) => tag.name === op.tags?.[0]), `${route}: its group ${op.tags?.[0]} is described`)
  }
  const plain = await startTestService()
  t.teardown(() => plain.server.shutdown())
  const open = (await (await fetch(`${plain.url}/openapi.json`)).json()) as OpenApiDoc
  t.equal(open.security, undefined, 'without API_KEYS: no default security')
  t.equal(open.components.securitySchemes, undefined, 'and no scheme, so /docs shows no Authorize button')
  t.same(ops(open).filter(({ op }) => op.security !== undefined).map(({ route }) => route), [], 'and no lock on any route')
})

t.test('CORS: only configured origins, preflights answered without the key', async (t) => {
  const preflight = (origin: string) =>
    fetch(`${svc.url}/explain`, { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'authorization,content-type' } })
  const ok = await preflight('https://curation.example')
  t.equal(ok.status, 204)
  t.equal(ok.headers.get('access-control-allow-origin'), 'https://curation.example')
  t.match(ok.headers.get('access-control-allow-headers'), /authorization/)
  const other = await preflight('https://evil.example')
  t.equal(other.headers.get('access-control-allow-origin'), null, 'an origin not listed gets no CORS grant')
  const get = await fetch(`${svc.url}/models`, { headers: { origin: 'http://localhost:3000', authorization: 'Bearer sesame' } })
  t.equal(get.status, 200)
  t.equal(get.headers.get('access-control-allow-origin'), 'http://localhost:3000')
  t.match(get.headers.get('access-control-expose-headers'), /x-request-id/)
})

t.test('CORS is off by default', async (t) => {
  const plain = await startTestService()
  t.teardown(() => plain.server.shutdown())
  const res = await fetch(`${plain.url}/models`, { headers: { origin: 'https://curation.example' } })
  t.equal(res.status, 200)
  t.equal(res.headers.get('access-control-allow-origin'), null)
  await res.arrayBuffer()
})
