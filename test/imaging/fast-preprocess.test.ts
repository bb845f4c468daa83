import sharp from 'sharp'
import t from 'tap'
import { ImageAdmission } from '../../src/imaging/admission.js'
import { decodeImage } from '../../src/imaging/decode.js'
import { fastCover, fastDecodedSize, jpegShrinkOnLoad } from '../../src/imaging/preprocess.js'
import { decodeForRequest } from '../../src/imaging/sampled-decode.js'

// Photo-like JPEGs: smooth noise enlarged, so DCT scaling and a full decode differ a little.
const noise = Buffer.alloc(64 * 48 * 3)
for (let i = 0; i < noise.length; i++) noise[i] = (i * 2654435761) >>> 24
const photo = (w: number, h: number, orientation?: number) => {
  const img = sharp(noise, { raw: { width: 64, height: 48, channels: 3 } }).resize(w, h)
  return (orientation === undefined ? img : img.withMetadata({ orientation })).jpeg({ quality: 90 }).toBuffer()
}
const large = await photo(4000, 3000)
const request = { sizes: [[224, 224]] as const }
const fast = { ...request, preprocess: 'fast' as const }
const encode = (s: { data: Uint8Array }) => Buffer.from(s.data).toString('base64')

t.test('the box a fast decode covers: twice the largest input, and the display copy', async (t) => {
  t.same(fastCover([[224, 224]]), { width: 448, height: 448 })
  t.same(fastCover([[224, 224], [300, 100]]), { width: 600, height: 448 })
  t.same(fastCover([[224, 224]], 1024), { width: 1024, height: 1024 })
  t.equal(fastCover([]), undefined, 'nothing sampled: the full decode')
})

t.test('fast decodes a 12 MP JPEG on load to a size that still covers twice the input', async (t) => {
  const full = await decodeImage(large, { maxInputPixels: 64_000_000 })
  const shrunk = await decodeImage(large, { maxInputPixels: 64_000_000, cover: { width: 448, height: 448 } })
  t.same([full.width, full.height], [4000, 3000])
  t.ok(shrunk.height >= 448 && shrunk.width >= 448, `${shrunk.width}×${shrunk.height} covers 448×448`)
  t.ok(shrunk.height < 3000 / 2, 'and is a fraction of the photo')
  t.equal(Math.round((shrunk.width / shrunk.height) * 100), Math.round((4000 / 3000) * 100), 'the aspect ratio kept')
})

t.test('fast: the photo’s own size and its preprocessing reported, samples of the model size, close to exact', async (t) => {
  const exact = await decodeForRequest(large, 64_000_000, request)
  const quick = await decodeForRequest(large, 64_000_000, fast)
  t.equal(exact.image.preprocess, 'exact')
  t.equal(quick.image.preprocess, 'fast')
  t.same([quick.image.width, quick.image.height, quick.image.id, quick.image.bytes], [exact.image.width, exact.image.height, exact.image.id, exact.image.bytes])
  t.same([quick.samples[0]!.width, quick.samples[0]!.height], [224, 224])
  t.not(encode(quick.samples[0]!), encode(exact.samples[0]!), 'other pixels: DCT scaling is not the full decode')
  let diff = 0
  for (let i = 0; i < exact.samples[0]!.data.length; i++) diff += Math.abs(exact.samples[0]!.data[i]! - quick.samples[0]!.data[i]!)
  t.ok(diff / exact.samples[0]!.data.length < 8, `but the same picture: mean |Δ| ${(diff / exact.samples[0]!.data.length).toFixed(2)} of 255`)
  t.same(await decodeForRequest(large, 64_000_000, { ...request, preprocess: 'exact' }), exact, "'exact' is what no preprocess field asks for")
})

t.test('the decoder’s reduction on load: sharp’s rule for JPEG', async (t) => {
  const box = { width: 448, height: 448 }
  t.equal(jpegShrinkOnLoad(4000, 3000, box), 4, '12 MP: a shrink of 6.7')
  t.equal(jpegShrinkOnLoad(2251, 1688, box), 2, '3.8 MP: 3.8')
  t.equal(jpegShrinkOnLoad(8000, 6000, box), 8, '48 MP: 13.4')
  t.equal(jpegShrinkOnLoad(1633, 1225, box), 1, '2 MP: 2.7, whose integer part is the factor: halved (libjpeg rounding)')
  t.equal(jpegShrinkOnLoad(3584, 3584, box), 4, 'exactly 8: halved too')
  t.equal(jpegShrinkOnLoad(400, 300, box), 1, 'smaller than the box: never enlarged')
  t.same(fastDecodedSize('jpeg', 4000, 3000, box), { width: 1000, height: 750 })
  t.same(fastDecodedSize('jpeg', 4001, 3001, box), { width: 1001, height: 751 }, 'libjpeg rounds up')
  t.same(fastDecodedSize('jpeg', 8000, 2000, { width: 448, height: 224 }), { width: 4000, height: 1000 }, 'the smaller factor of the two ways the photo may be turned')
  t.same(fastDecodedSize('png', 4000, 3000, box), { width: 4000, height: 3000 }, 'other formats: no reduction assumed')
})

t.test('fast where the decoder cannot reduce on load: the full decode, exact pixel for pixel', async (t) => {
  for (const [w, h] of [[400, 300], [1600, 1200]] as const) {
    const img = await photo(w, h)
    const exact = await decodeForRequest(img, 64_000_000, request)
    const quick = await decodeForRequest(img, 64_000_000, fast)
    t.equal(encode(quick.samples[0]!), encode(exact.samples[0]!), `${w}×${h}: the same samples`)
    t.same({ ...quick.image, preprocess: 'exact' }, exact.image, `${w}×${h}: the same summary and hashes`)
  }
  const png = await sharp(noise, { raw: { width: 64, height: 48, channels: 3 } }).resize(2400, 1800).png().toBuffer()
  t.equal(encode((await decodeForRequest(png, 64_000_000, fast)).samples[0]!), encode((await decodeForRequest(png, 64_000_000, request)).samples[0]!), 'PNG: no reduction on load')
})

t.test('fast applies EXIF orientation before it measures: the size is the one a viewer shows', async (t) => {
  const rotated = await photo(3000, 2000, 6)
  const exact = await decodeForRequest(rotated, 64_000_000, request)
  const quick = await decodeForRequest(rotated, 64_000_000, fast)
  t.same([exact.image.width, exact.image.height], [2000, 3000])
  t.same([quick.image.width, quick.image.height], [2000, 3000])
})

t.test('fast: both lanes give the same answer, byte for byte', async (t) => {
  const here = new ImageAdmission({ maxInputPixels: 64_000_000 })
  const there = new ImageAdmission({ maxInputPixels: 64_000_000, decodeIsolation: 'process', decodeInlineMaxPixels: 0, decodeConcurrency: 1 })
  t.teardown(() => there.close())
  const a = await here.pixels(large, { ...fast, preview: 512 })
  const b = await there.pixels(large, { ...fast, preview: 512 })
  t.same(b.image, a.image)
  t.equal(a.image.preprocess, 'fast')
  t.same(b.samples.map(encode), a.samples.map(encode))
  t.ok(Buffer.from(b.preview!.data).equals(Buffer.from(a.preview!.data)))
  t.same([a.preview!.width, a.preview!.height], [512, 384])
})
