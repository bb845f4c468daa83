import sharp from 'sharp'
import t from 'tap'
import { manyScanJpeg } from '../helpers/many-scan-jpeg.js'
import { startTestService } from '../helpers/service.js'

/**
 * Issue #12, items 1 and 2 through the real server: decodes that overrun are stopped and
 * cannot hold the decode slots, the scan count and the memory estimate refuse costly
 * images before decoding.
 */
// 2,647 scans over 4 MP: about 1.6 s of libjpeg here; the scan limit is lifted so that they
// reach the decoder and overrun its 300 ms budget.
const overrunning = manyScanJpeg({ width: 2000, height: 2000 })
const tiny = await sharp({ create: { width: 64, height: 48, channels: 3, background: '#406080' } }).jpeg().toBuffer()

type Service = Awaited<ReturnType<typeof startTestService>>

const post = async (svc: Service, body: Buffer) => {
  const started = performance.now()
  const res = await fetch(`${svc.url}/score`, { method: 'POST', body, headers: { 'content-type': 'image/jpeg' } })
  const json = (await res.json()) as { error?: { code: string; message: string } }
  return { status: res.status, code: json.error?.code ?? 'ok', message: json.error?.message ?? '', ms: performance.now() - started }
}

t.test('memory budget (decode timeout at its default)', async (t) => {
  // The score cache off here and below: the same image is sent again and again, and each must be decoded.
  const svc = await startTestService({ SCORE_CACHE: 'off', DECODE_CONCURRENCY: 2, DECODE_MEMORY_BUDGET_BYTES: 128 * 1024 * 1024 })
  t.teardown(() => svc.server.shutdown())

t.test('an image estimated above DECODE_MEMORY_BUDGET_BYTES alone is refused before decoding', async (t) => {
  // 4000x4000 progressive, 3 components: 48 MB source + 48 MB output + 96 MB coefficients > 128 MiB.
  const r = await post(svc, manyScanJpeg({ width: 4000, height: 4000, maxScans: 10 }))
  t.same([r.status, r.code], [413, 'NIMA_IMAGE_TOO_LARGE'])
  t.equal(r.message, 'Decoding this 4000x4000 JPEG image needs about 184 MiB, more than DECODE_MEMORY_BUDGET_BYTES (128 MiB)')
})

t.test('decodes within the memory budget wait their turn and all succeed', async (t) => {
  // 2000x2000 progressive, 2 scans (cheap to decode): 12 + 12 + 24 MB = 48 MB each, so two at a time under 128 MiB.
  const ok = manyScanJpeg({ width: 2000, height: 2000, maxScans: 2 })
  const results = await Promise.all([post(svc, ok), post(svc, ok), post(svc, ok), post(svc, ok)])
  t.same(results.map((r) => [r.status, r.code]), new Array(4).fill([200, 'ok']), `answered in ${results.map((r) => r.ms.toFixed(0)).join(', ')} ms`)
})
})

t.test('overrunning decodes (decode timeout 300 ms, scan limit lifted)', async (t) => {
  // Every image to a decode process, the tiny one too: this is the isolation under test.
  const svc = await startTestService({ SCORE_CACHE: 'off', DECODE_CONCURRENCY: 2, DECODE_TIMEOUT_MS: 300, JPEG_MAX_SCANS: 100_000, DECODE_INLINE_MAX_PIXELS: 0 })
  t.teardown(() => svc.server.shutdown())

t.test('a tiny image is answered within 2 s while two overrunning decodes hold both decode slots', async (t) => {
  t.equal((await post(svc, tiny)).status, 200, 'warm: both decode processes have run')
  t.equal((await Promise.all([post(svc, tiny), post(svc, tiny)])).every((r) => r.status === 200), true)
  const hostile = [post(svc, overrunning), post(svc, overrunning)]
  await new Promise((resolve) => setTimeout(resolve, 50))
  const small = await post(svc, tiny)
  t.equal(small.status, 200)
  t.ok(small.ms < 2000, `tiny image answered in ${small.ms.toFixed(0)} ms behind two overrunning decodes`)
  for (const r of await Promise.all(hostile)) {
    t.same([r.status, r.code], [422, 'NIMA_DECODE_TIMEOUT'])
    t.ok(r.ms < 2000, `overrunning decode answered in ${r.ms.toFixed(0)} ms`)
  }
  const after = await post(svc, tiny)
  t.equal(after.status, 200, 'the replaced processes decode again')
})
})
