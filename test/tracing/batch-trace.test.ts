/**
 * The batch CLI exports traces with the same variables as the service: the built command
 * (`node dist/cli/batch-entry.js batch`) sends them to a real OTLP/HTTP receiver, one trace
 * per chunk of input items, each item a span over its fetch, decode and inference.
 */
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { testModelsDir } from '../helpers/models.js'
import { startOtlpReceiver, printTree } from '../helpers/otlp-receiver.js'
import { projectRoot } from '../helpers/paths.js'
import { startUpstream } from '../helpers/service.js'
import { smallPhotos } from '../batch/helpers.js'

const entry = join(projectRoot, 'dist/cli/batch-entry.js')
const photos = smallPhotos(3)
const why = !existsSync(entry) ? 'dist/cli/batch-entry.js is missing (npm run build)' : photos.length < 3 ? 'fewer than 3 sample photos in ../shared/images' : undefined

t.test('nima-serve batch: a trace per chunk, an item span per line, the same spans below as a request', { skip: why ?? false }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'nima-batch-trace-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const receiver = await startOtlpReceiver()
  t.teardown(receiver.close)
  const upstream = await startUpstream((_req, res) => res.writeHead(200).end(readFileSync(photos[2]!)))
  t.teardown(upstream.close)
  const input = join(dir, 'input.txt')
  writeFileSync(input, [photos[0], photos[1], `${upstream.url}/photo.jpg?token=SECRET`, join(dir, 'missing.jpg')].join('\n') + '\n')

  const child = spawn(process.execPath, [entry, 'batch', '--input', input, '--output', join(dir, 'out.jsonl'), '--no-cache', '--allow', '127.0.0.1', '--batch-size', '4'], {
    cwd: projectRoot,
    env: {
      PATH: process.env['PATH'] ?? '/usr/bin:/bin',
      MODELS_DIR: await testModelsDir(),
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stderr = ''
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve))
  t.equal(code, 0, stderr)

  // The command flushes its spans before it exits: they are all here already.
  const chunks = receiver.spans.filter((s) => s.name === 'batch chunk')
  t.equal(chunks.length, 1, 'four items: one chunk')
  const chunk = chunks[0]!
  t.equal(chunk.parentSpanId, '', 'a root span: a trace of its own')
  t.equal(chunk.attributes['nima.batch.items'], 4)
  const spans = receiver.spans.filter((s) => s.traceId === chunk.traceId)
  t.comment(`\n${printTree(spans, chunk.traceId)}`)
  const items = spans.filter((s) => s.name === 'batch item')
  t.same(items.map((s) => s.attributes['nima.batch.line']).sort(), [1, 2, 3, 4])
  t.ok(items.every((s) => s.parentSpanId === chunk.spanId), 'the items are the chunk span\'s children')
  const failed = items.find((s) => s.attributes['nima.batch.line'] === 4)!
  t.equal(failed.attributes['error.type'], 'NIMA_MISSING_IMAGE')
  t.equal(failed.status.code, 2, 'marked failed')

  const byId = new Map(spans.map((s) => [s.spanId, s]))
  const itemOf = (s: (typeof spans)[number]): number | undefined => {
    for (let p = byId.get(s.parentSpanId); p; p = byId.get(p.parentSpanId)) if (p.name === 'batch item') return p.attributes['nima.batch.line'] as number
    return undefined
  }
  t.same(spans.filter((s) => s.name === 'decode').map(itemOf).sort(), [1, 2, 3], 'a decode in each scored item')
  for (const model of ['aesthetic', 'technical']) {
    t.same(spans.filter((s) => s.name === `inference ${model}`).map(itemOf).sort(), [1, 2, 3], `an inference ${model} in each scored item`)
  }
  const client = spans.filter((s) => s.kind === 3)
  t.equal(client.length, 1, 'the URL item fetched once')
  t.equal(client[0]!.attributes['url.full'], `${upstream.url}/photo.jpg`, 'no query string')
  t.equal(itemOf(client[0]!), 3)
  t.notOk(JSON.stringify(spans, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v)).includes('SECRET'))
})
