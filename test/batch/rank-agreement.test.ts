/**
 * POST /rank and `batch` + `rank-hotels` rank the same images the same way, with a
 * fine-tuned model (id `aesthetic-hotel`, task aesthetic) in front: both go through the
 * one ranking rule in src/scoring/ranking.ts. Before it, /rank broke ties on the model
 * whose *id* was `aesthetic` and rank-hotels on the one whose *task* was.
 */
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import sharp from 'sharp'
import t from 'tap'
import { rankHotels } from '../../src/batch/rank-hotels.js'
import { runBatchCommand } from '../../src/cli/batch-command.js'
import { testModelsDir } from '../helpers/models.js'
import { startTestService, startUpstream } from '../helpers/service.js'
import { recordIo } from '../models/cli-io.js'
import { smallPhotos } from './helpers.js'

const dir = mkdtempSync(join(tmpdir(), 'nima-rank-agree-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))

// A models folder whose aesthetic model is served under another id, as a fine-tuned one is.
const models = join(dir, 'models')
const base = await testModelsDir()
cpSync(join(base, 'technical'), join(models, 'technical'), { recursive: true })
const [version] = (await import('node:fs')).readdirSync(join(base, 'aesthetic'))
cpSync(join(base, 'aesthetic', version!), join(models, 'aesthetic-hotel', version!), { recursive: true })
const manifestPath = join(models, 'aesthetic-hotel', version!, 'manifest.json')
writeFileSync(manifestPath, JSON.stringify({ ...JSON.parse(readFileSync(manifestPath, 'utf8')), id: 'aesthetic-hotel' }, null, 2))
const env = { MODELS_DIR: models, MODELS: 'aesthetic-hotel,technical' }

// Photos, plus one photo twice as PNGs of identical pixels but different bytes: an exact
// tie on every score, which only input order can break.
const files = new Map<string, Buffer>()
smallPhotos(6).forEach((p, i) => files.set(`/p${i}.jpg`, readFileSync(p)))
const pixels = sharp(readFileSync(smallPhotos(1)[0]!))
files.set('/tie-a.png', await pixels.clone().png({ compressionLevel: 1 }).toBuffer())
files.set('/tie-b.png', await pixels.clone().png({ compressionLevel: 9 }).toBuffer())
files.set('/copy.jpg', files.get('/p2.jpg')!)
const upstream = await startUpstream((req, res) => {
  const body = files.get(req.url ?? '')
  if (body) res.writeHead(200).end(body)
  else res.writeHead(404).end()
})
t.teardown(upstream.close)
const paths = ['/tie-b.png', '/p0.jpg', '/p1.jpg', '/copy.jpg', '/p2.jpg', '/tie-a.png', '/p3.jpg', '/p4.jpg', '/p5.jpg', '/missing.jpg']

t.test('HTTP and batch give the same order, groups and combined scores', async (t) => {
  const svc = await startTestService(env)
  t.teardown(() => svc.server.shutdown())
  const res = await fetch(`${svc.url}/rank`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ images: paths.map((p) => ({ url: upstream.url + p, id: p })) }),
  })
  t.equal(res.status, 200)
  const http = (await res.json()) as { ranked: { id: string; combined: { score: number; weights: Record<string, number> }; duplicates: { id: string }[] }[]; failed: { id: string }[] }
  t.same(http.ranked[0]!.combined.weights, { 'aesthetic-hotel': 0.6, technical: 0.4 }, 'the fine-tuned model inherits the aesthetic weight')

  const input = join(dir, 'in.csv')
  writeFileSync(input, ['hotel_id,image_id,url', ...paths.map((p) => `h,${p},${upstream.url}${p}`)].join('\n') + '\n')
  const results = join(dir, 'results.jsonl')
  const io = recordIo(env)
  t.equal(await runBatchCommand(['--input', input, '--output', results, '--allow', '127.0.0.1', '--no-cache'], io), 0, io.stderr)
  const out = join(dir, 'ranked.jsonl')
  await rankHotels({ inputs: [results], output: out })
  const hotel = JSON.parse(readFileSync(out, 'utf8').trim()) as { ranked: { image_id: string; combined: { score: number }; duplicates: { image_id: string }[] }[]; failed: { image_id: string }[] }

  t.same(
    hotel.ranked.map((r) => [r.image_id, r.duplicates.map((d) => d.image_id)]),
    http.ranked.map((r) => [r.id, r.duplicates.map((d) => d.id)]),
    'same order and same duplicate groups',
  )
  t.same(hotel.ranked.map((r) => r.combined.score), http.ranked.map((r) => r.combined.score), 'same combined scores')
  t.same(hotel.failed.map((f) => f.image_id), http.failed.map((f) => f.id))
  const order = http.ranked.map((r) => r.id)
  t.ok(order.indexOf('/tie-b.png') < order.indexOf('/tie-a.png'), 'an exact tie keeps input order')
  t.same(http.ranked.find((r) => r.id === '/copy.jpg')?.duplicates.map((d) => d.id), ['/p2.jpg'], 'byte-identical: the earlier input leads')
})
