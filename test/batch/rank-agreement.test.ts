/**
 * POST /rank and `batch` + `rank-hotels` rank the same images the same way, with a
 * fine-tuned model (id `aesthetic-hotel`, task aesthetic) in front: both go through the
 * one ranking rule in src/scoring/ranking.ts. Before it, /rank broke ties on the model
 * whose *id* was `aesthetic` and rank-hotels on the one whose *task* was. The same holds for
 * near-duplicate groups (from the phash each batch line carries) and for diverse picks.
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
// Near-duplicates of p3 as another supplier would send them: resized, and recompressed.
const p3 = sharp(files.get('/p3.jpg')!)
files.set('/p3-small.jpg', await p3.clone().resize(200).jpeg({ quality: 70 }).toBuffer())
files.set('/p3.webp', await p3.clone().webp({ quality: 40 }).toBuffer())
// And of p4: 5 % cut off its left and top edges, which groups through the corner-crop hashes
// (phashCrops in /rank's summaries and in batch lines alike).
const p4 = sharp(files.get('/p4.jpg')!)
const p4size = (await p4.metadata()) as { width: number; height: number }
const [dx, dy] = [Math.round(p4size.width * 0.05), Math.round(p4size.height * 0.05)]
files.set('/p4-crop.jpg', await p4.clone().extract({ left: dx, top: dy, width: p4size.width - dx, height: p4size.height - dy }).jpeg({ quality: 90 }).toBuffer())
const upstream = await startUpstream((req, res) => {
  const body = files.get(req.url ?? '')
  if (body) res.writeHead(200).end(body)
  else res.writeHead(404).end()
})
t.teardown(upstream.close)
const paths = ['/tie-b.png', '/p0.jpg', '/p1.jpg', '/copy.jpg', '/p2.jpg', '/tie-a.png', '/p3-small.jpg', '/p3.jpg', '/p4.jpg', '/p3.webp', '/p5.jpg', '/p4-crop.jpg', '/missing.jpg']

type HttpRanked = { id: string; combined: { score: number; weights: Record<string, number> }; duplicates: { id: string }[]; nearDuplicates: { id: string; distance: number; similarity: number }[] }
type HotelRanked = { image_id: string; combined: { score: number }; duplicates: { image_id: string }[]; near_duplicates: { image_id: string; distance: number; similarity: number }[] }
const httpShape = (r: HttpRanked[]) => r.map((e) => [e.id, e.duplicates.map((d) => d.id), e.nearDuplicates.map((n) => [n.id, n.distance, n.similarity])])
const hotelShape = (r: HotelRanked[]) => r.map((e) => [e.image_id, e.duplicates.map((d) => d.image_id), e.near_duplicates.map((n) => [n.image_id, n.distance, n.similarity])])

async function rankOverHttp(url: string, options: object): Promise<{ ranked: HttpRanked[]; failed: { id: string }[] }> {
  const res = await fetch(`${url}/rank`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ images: paths.map((p) => ({ url: upstream.url + p, id: p })), ...options }),
  })
  if (res.status !== 200) throw new Error(`/rank answered ${res.status}: ${await res.text()}`)
  return (await res.json()) as { ranked: HttpRanked[]; failed: { id: string }[] }
}

t.test('HTTP and batch give the same order, groups, near-duplicate groups and combined scores', async (t) => {
  const svc = await startTestService(env)
  t.teardown(() => svc.server.shutdown())
  const http = await rankOverHttp(svc.url, {})
  t.same(http.ranked[0]!.combined.weights, { 'aesthetic-hotel': 0.6, technical: 0.4 }, 'the fine-tuned model inherits the aesthetic weight')

  const input = join(dir, 'in.csv')
  writeFileSync(input, ['hotel_id,image_id,url', ...paths.map((p) => `h,${p},${upstream.url}${p}`)].join('\n') + '\n')
  const results = join(dir, 'results.jsonl')
  const io = recordIo(env)
  t.equal(await runBatchCommand(['--input', input, '--output', results, '--allow', '127.0.0.1', '--no-cache'], io), 0, io.stderr)
  const hotelRank = async (rank?: object) => {
    const out = join(dir, 'ranked.jsonl')
    await rankHotels({ inputs: [results], output: out, ...(rank ? { rank } : {}) })
    return JSON.parse(readFileSync(out, 'utf8').trim()) as { ranked: HotelRanked[]; failed: { image_id: string }[] }
  }
  const hotel = await hotelRank()

  t.same(hotelShape(hotel.ranked), httpShape(http.ranked), 'same order, duplicate groups and near-duplicate groups')
  t.same(hotel.ranked.map((r) => r.combined.score), http.ranked.map((r) => r.combined.score), 'same combined scores')
  t.same(hotel.failed.map((f) => f.image_id), http.failed.map((f) => f.id))
  // p0..p2 are idealo's one bedroom shot (clean, JPEG-compressed, blurred): one picture.
  const bedroom = http.ranked.find((r) => r.nearDuplicates.some((n) => n.id === '/tie-a.png'))!
  t.same(
    new Set([bedroom.id, ...bedroom.nearDuplicates.map((n) => n.id)]),
    new Set(['/p0.jpg', '/p1.jpg', '/p2.jpg', '/copy.jpg', '/tie-a.png', '/tie-b.png']),
    'the bedroom shot in all its versions is one entry',
  )
  const distance = (id: string) => bedroom.nearDuplicates.find((n) => n.id === id)?.distance
  t.equal(distance('/tie-a.png'), distance('/tie-b.png'), 'identical pixels, different bytes: the same distance')
  t.equal(distance('/copy.jpg'), distance('/p2.jpg'), 'byte-identical copies come along together')
  const p3 = http.ranked.find((r) => ['/p3.jpg', '/p3-small.jpg', '/p3.webp'].includes(r.id))!
  t.same(new Set([p3.id, ...p3.nearDuplicates.map((n) => n.id)]), new Set(['/p3.jpg', '/p3-small.jpg', '/p3.webp']), 'resized and recompressed copies are one entry')
  const p4 = http.ranked.find((r) => ['/p4.jpg', '/p4-crop.jpg'].includes(r.id))!
  t.same(new Set([p4.id, ...p4.nearDuplicates.map((n) => n.id)]), new Set(['/p4.jpg', '/p4-crop.jpg']), 'a one-sided crop is one entry with its original')

  const options = { nearDuplicates: { enabled: false }, select: { k: 3, diversity: 0.4 } }
  const diverseHttp = await rankOverHttp(svc.url, options)
  const diverseHotel = await hotelRank(options)
  t.same(hotelShape(diverseHotel.ranked), httpShape(diverseHttp.ranked), 'grouping off with diverse picks: the same order again')
  t.equal(diverseHttp.ranked.length, 11, 'grouping off: byte-identical folding only')
  const order = diverseHttp.ranked.map((r) => r.id)
  t.ok(order.indexOf('/tie-b.png') < order.indexOf('/tie-a.png'), 'an exact tie keeps input order, picks or not')
  t.same(diverseHttp.ranked.find((r) => r.id === '/copy.jpg')?.duplicates.map((d) => d.id), ['/p2.jpg'], 'byte-identical: the earlier input leads')
  const bedroomShots = new Set(['/p0.jpg', '/p1.jpg', '/copy.jpg', '/tie-a.png', '/tie-b.png'])
  t.ok(order.slice(0, 3).filter((id) => bedroomShots.has(id)).length <= 1, `one bedroom shot at most among the 3 diverse picks: ${order.slice(0, 3).join(', ')}`)
})
