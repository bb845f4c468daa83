import { spawn } from 'node:child_process'
import { request } from 'node:http'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { projectRoot, sharedImages } from '../helpers/paths.js'
import { testModelsDir } from '../helpers/models.js'
import { startUpstream } from '../helpers/service.js'

/** The real process, real signals: SIGTERM drains in-flight work, refuses new connections, exits 0. */
async function startProcess(env: Record<string, string>) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: projectRoot,
    env: { ...process.env, HOST: '127.0.0.1', PORT: '0', MODELS_DIR: await testModelsDir(), URL_ALLOWLIST: '127.0.0.1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const lines: string[] = []
  let resolveReady: (url: string) => void
  const ready = new Promise<string>((r) => (resolveReady = r))
  let url = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    for (const line of chunk.split('\n').filter(Boolean)) {
      lines.push(line)
      const m = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(line)
      if (m) url = m[1]!
      if (line.includes('"msg":"ready"')) resolveReady(url)
    }
  })
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)))
  return { child, ready, exited, lines }
}

t.test('SIGTERM: readiness off, in-flight request finishes, new connections refused, exit 0', async (t) => {
  const upstream = await startUpstream((_req, res) => {
    setTimeout(() => res.writeHead(200).end(readFileSync(join(sharedImages, 'idealo/42039.jpg'))), 1500)
  })
  t.teardown(upstream.close)
  const p = await startProcess({ SHUTDOWN_GRACE_MS: '10000' })
  t.teardown(() => p.child.kill('SIGKILL'))
  const base = await p.ready
  const inflight = fetch(base + '/score', { method: 'POST', body: JSON.stringify({ url: upstream.url + '/slow.jpg' }), headers: { 'content-type': 'application/json' } })
  await new Promise((r) => setTimeout(r, 300))
  p.child.kill('SIGTERM')
  await new Promise((r) => setTimeout(r, 300))
  const late = await fetch(base + '/healthz').then(
    (r) => `status ${r.status}`,
    (e: Error & { cause?: { code?: string } }) => e.cause?.code ?? e.message,
  )
  t.equal(late, 'ECONNREFUSED', 'new connections are refused while draining')
  const res = await inflight
  t.equal(res.status, 200, 'the in-flight request completed')
  t.equal(await p.exited, 0, 'exit code 0 after draining')
  t.ok(p.lines.some((l) => l.includes('"msg":"draining"')), 'logged draining')
})

t.test('SIGTERM with a request outliving the grace period: exit 1 after the grace period', async (t) => {
  const upstream = await startUpstream(() => {
    /* never answers */
  })
  t.teardown(upstream.close)
  const p = await startProcess({ SHUTDOWN_GRACE_MS: '500', URL_HEADERS_TIMEOUT_MS: '20000' })
  t.teardown(() => p.child.kill('SIGKILL'))
  const base = await p.ready
  void fetch(base + '/score', { method: 'POST', body: JSON.stringify({ url: upstream.url + '/hang.jpg' }), headers: { 'content-type': 'application/json' } }).catch(() => {})
  await new Promise((r) => setTimeout(r, 300))
  p.child.kill('SIGTERM')
  t.equal(await p.exited, 1)
  // What the process says, not how long it took: it drained with the request in flight,
  // and stopped because the grace period ran out (not for any other reason).
  const logged = p.lines.flatMap((l) => {
    try {
      return [JSON.parse(l) as { msg?: string; inflight?: number; graceMs?: number; drained?: boolean }]
    } catch {
      return []
    }
  })
  t.match(logged.find((l) => l.msg === 'draining'), { inflight: 1, graceMs: 500 }, 'drained with the request in flight')
  t.match(logged.find((l) => l.msg === 'grace period over, stopping with requests in flight'), { drained: false }, 'stopped because the grace period ran out')
})

/** POSTs `body` as a raw image in two halves, calling `between` once the first is sent. */
function uploadInHalves(base: string, path: string, body: Buffer, between: () => Promise<void>): Promise<{ status: number; json: Record<string, unknown> }> {
  const url = new URL(path, base)
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', headers: { 'content-type': 'image/jpeg', 'content-length': body.length } }, (res) => {
      let text = ''
      res.setEncoding('utf8').on('data', (c: string) => (text += c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, json: JSON.parse(text) as Record<string, unknown> }))
    })
    req.on('error', reject)
    const half = body.length >> 1
    req.write(body.subarray(0, half), () => void between().then(() => req.end(body.subarray(half)), reject))
  })
}

t.test('SIGTERM while an upload is mid-body: the request (in before draining) is scored, not refused', async (t) => {
  const p = await startProcess({ SHUTDOWN_GRACE_MS: '10000' })
  t.teardown(() => p.child.kill('SIGKILL'))
  const base = await p.ready
  const photo = readFileSync(join(sharedImages, 'idealo/42039.jpg'))
  const res = await uploadInHalves(base, '/score', photo, async () => {
    // Its headers and half its body are in: the server is holding it when the signal comes.
    await new Promise((r) => setTimeout(r, 300))
    p.child.kill('SIGTERM')
    await new Promise((r) => setTimeout(r, 300))
  })
  t.equal(res.status, 200, `scored after the signal: ${JSON.stringify(res.json).slice(0, 200)}`)
  t.type((res.json.scores as Record<string, { mean?: unknown }> | undefined)?.aesthetic?.mean, 'number', 'with its scores')
  t.equal(await p.exited, 0, 'exit code 0 after draining')
  const draining = p.lines.find((l) => l.includes('"msg":"draining"'))
  t.match(draining, /"inflight":1\b/, 'counted in flight while its body was still arriving')
})
