import sharp from 'sharp'
import t from 'tap'
import { ImageAdmission } from '../../src/imaging/admission.js'
import { manyScanJpeg } from '../helpers/many-scan-jpeg.js'

// A photo-like 640×480 JPEG (an ordinary photo: the inline lane) and a 2400×1800 one (outside it).
const noise = Buffer.alloc(64 * 48 * 3)
for (let i = 0; i < noise.length; i++) noise[i] = (i * 2654435761) >>> 24
const photo = (w: number, h: number) => sharp(noise, { raw: { width: 64, height: 48, channels: 3 } }).resize(w, h).jpeg({ quality: 85 }).toBuffer()
const ordinary = await photo(640, 480)
const large = await photo(2400, 1800)
const request = { sizes: [[224, 224], [100, 60]] as const, preview: 512 }

t.test('both lanes give the same answer: summary, samples and display copy, byte for byte', async (t) => {
  const here = new ImageAdmission({ maxInputPixels: 64_000_000 })
  const there = new ImageAdmission({ maxInputPixels: 64_000_000, decodeIsolation: 'process', decodeInlineMaxPixels: 0, decodeConcurrency: 1 })
  t.teardown(() => there.close())
  for (const bytes of [ordinary, large]) {
    const a = await here.pixels(bytes, request)
    const b = await there.pixels(bytes, request)
    t.same(b.image, a.image, 'the same summary and hashes')
    t.same(
      b.samples.map((s) => [s.width, s.height, Buffer.from(s.data).toString('base64')]),
      a.samples.map((s) => [s.width, s.height, Buffer.from(s.data).toString('base64')]),
      'the same samples',
    )
    t.same([b.preview!.width, b.preview!.height], [a.preview!.width, a.preview!.height])
    t.ok(Buffer.from(b.preview!.data).equals(Buffer.from(a.preview!.data)), 'the same display copy')
  }
  t.same([(await here.pixels(ordinary, request)).preview!.width, (await here.pixels(ordinary, request)).preview!.height], [512, 384], 'the display copy fits 512 × 512')
  const small = await here.pixels(await photo(64, 48), { sizes: [], preview: 512 })
  t.same([small.preview!.width, small.preview!.height, small.samples.length], [512, 384, 0], 'a small photo is enlarged to it; no samples asked, none made')
  t.equal((await here.pixels(ordinary, { sizes: [] })).preview, undefined, 'no display copy unless asked for')
})

t.test("decodeProcessStart 'when-needed': no process until an image leaves the inline lane", async (t) => {
  const admission = new ImageAdmission({ maxInputPixels: 64_000_000, decodeIsolation: 'process', decodeInlineMaxPixels: 2_000_000, decodeConcurrency: 1, decodeProcessStart: 'when-needed' })
  t.teardown(() => admission.close())
  t.same(admission.decodeProcessIds, [undefined], 'none at the start')
  const admitted = await admission.admit(ordinary, request)
  t.equal(admitted.inline, true)
  await admission.decode(admitted)
  t.same(admission.decodeProcessIds, [undefined], 'none after an ordinary photo')
  t.equal((await admission.admit(large, request)).inline, false)
  await admission.pixels(large, request)
  t.ok(typeof admission.decodeProcessIds[0] === 'number', 'one after a large photo')
})

t.test('admit: the refusals come from the header, before any decode', async (t) => {
  const admission = new ImageAdmission({ maxInputPixels: 1_000_000, decodeMemoryBudgetBytes: 8 * 1024 * 1024 })
  await t.rejects(admission.admit(large, request), { code: 'NIMA_IMAGE_TOO_LARGE', message: 'The image has more pixels than MAX_INPUT_PIXELS allows' })
  await t.rejects(admission.admit(Buffer.from('hello'), request), { code: 'NIMA_UNSUPPORTED_MEDIA_TYPE' })
  // A 640×480 baseline JPEG: the decoder's image (3 bands) and the RGB output, 3 bytes each per pixel.
  t.equal((await admission.admit(ordinary, request)).cost, 640 * 480 * 6)
  const budget = new ImageAdmission({ maxInputPixels: 64_000_000, decodeMemoryBudgetBytes: 1024 * 1024 })
  await t.rejects(budget.admit(ordinary, request), { code: 'NIMA_IMAGE_TOO_LARGE', message: /needs about 2 MiB, more than DECODE_MEMORY_BUDGET_BYTES \(1 MiB\)/ })
  t.throws(() => new ImageAdmission({ maxInputPixels: 1, decodeConcurrency: -1 }), { name: 'RangeError', message: /decodeConcurrency must be an integer ≥ 0/ })
})

t.test('PREPROCESS=fast: a JPEG the decoder reduces on load is charged, and laned, by what the decode makes', async (t) => {
  const admission = new ImageAdmission({ maxInputPixels: 64_000_000, decodeInlineMaxPixels: 2_000_000 })
  const exact = { sizes: [[224, 224]] as const }
  const fast = { ...exact, preprocess: 'fast' as const }
  const twelve = await photo(4000, 3000)
  const full = await admission.admit(twelve, exact)
  t.same([full.cost, full.inline], [4000 * 3000 * 6, false], 'exact: the full decode, outside the inline lane')
  const reduced = await admission.admit(twelve, fast)
  // 4000×3000 against 448×448: a shrink of 6.7, DCT scaling by 4 → 1000×750.
  t.same([reduced.cost, reduced.inline], [1000 * 750 * 6, true], 'fast: the image at 1/4, in the inline lane')
  const small = await admission.admit(await photo(1600, 1200), fast)
  t.equal(small.cost, 1600 * 1200 * 6, 'a shrink of 2.7 rounds down to no reduction: the full decode')
  // A progressive JPEG keeps every coefficient at full size until its last scan.
  const progressive = await sharp(noise, { raw: { width: 64, height: 48, channels: 3 } }).resize(4000, 3000).jpeg({ quality: 85, progressive: true }).toBuffer()
  const p = await admission.admit(progressive, fast)
  t.equal(p.inline, false, 'fast, progressive: its coefficients are those of 12 MP')
  t.ok(p.cost < (await admission.admit(progressive, exact)).cost, 'but its pixels are estimated at the reduced size')
})

t.test('PREPROCESS=fast: the inline lane still bounds the scan passes (pixels × scans)', async (t) => {
  const admission = new ImageAdmission({ maxInputPixels: 64_000_000, decodeInlineMaxPixels: 2_000_000, maxJpegScans: 100 })
  const fast = { sizes: [[224, 224]] as const, preprocess: 'fast' as const }
  // A sequential (SOF0) frame with 60 scans: no coefficients kept, but 60 passes over 3.8 MP.
  const sequential = (width: number, height: number, maxScans: number) => {
    const b = manyScanJpeg({ width, height, maxScans })
    b[b.indexOf(Buffer.from([0xff, 0xc2])) + 1] = 0xc0
    return b
  }
  t.equal((await admission.admit(sequential(2250, 1690, 60), fast)).inline, false, '3.8 MP × 60 scans passes 2 MP × 100')
  t.equal((await admission.admit(sequential(2250, 1690, 3), fast)).inline, true, '3.8 MP × 3 scans does not')
})
