import t from 'tap'
import sharp from 'sharp'
import { decodeImage } from '../../src/imaging/decode.js'

/**
 * The input decisions documented in docs/models.md, checked on images made here: every
 * variant comes out as 8-bit sRGB with the pixels the documented rule says.
 */
const limits = { maxInputPixels: 1e8 }
const W = 8
const H = 4
// A horizontal gradient with distinct R, G, B, so swaps and scalings show.
const rgb = Buffer.alloc(W * H * 3)
for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) rgb.set([x * 30, 255 - x * 30, 100 + y * 20], (y * W + x) * 3)
const base = () => sharp(rgb, { raw: { width: W, height: H, channels: 3 } })

t.test('alpha is dropped without compositing (PIL convert("RGB"))', async (t) => {
  const rgba = Buffer.alloc(W * H * 4)
  for (let i = 0; i < W * H; i++) rgba.set([...rgb.subarray(i * 3, i * 3 + 3), i % 2 ? 0 : 128], i * 4)
  const png = await sharp(rgba, { raw: { width: W, height: H, channels: 4 } }).png().toBuffer()
  const d = await decodeImage(png, limits)
  t.same([...d.data], [...rgb], 'colour channels kept as stored, even under alpha 0')
})

t.test('greyscale is replicated into R=G=B', async (t) => {
  const grey = await base().toColourspace('b-w').png().toBuffer()
  const meta = await sharp(grey).metadata()
  t.equal(meta.channels, 1)
  const d = await decodeImage(grey, limits)
  t.equal(d.data.length, W * H * 3)
  for (let i = 0; i < W * H; i++) t.ok(d.data[i * 3] === d.data[i * 3 + 1] && d.data[i * 3] === d.data[i * 3 + 2])
})

t.test('palette PNG expands to its colours', async (t) => {
  const pal = await base().png({ palette: true, colours: 256, dither: 0 }).toBuffer()
  t.equal((await sharp(pal).metadata()).isPalette, true)
  const d = await decodeImage(pal, limits)
  const maxDiff = Math.max(...[...d.data].map((v, i) => Math.abs(v - rgb[i]!)))
  t.ok(maxDiff <= 8, `palette quantisation only (max diff ${maxDiff})`)
})

t.test('16-bit PNG is reduced to 8-bit by scaling (v16 / 257), not clipped', async (t) => {
  const png16 = await base().toColourspace('rgb16').png().toBuffer()
  t.equal((await sharp(png16).metadata()).depth, 'ushort')
  const d = await decodeImage(png16, limits)
  t.same([...d.data], [...rgb])
})

t.test('CMYK JPEG is converted to sRGB through its profile', async (t) => {
  // Muted colours: saturated sRGB lies outside the CMYK gamut and could not round-trip.
  const muted = Buffer.from(rgb.map((v) => 90 + Math.round(v * 0.3)))
  const cmyk = await sharp(muted, { raw: { width: W, height: H, channels: 3 } })
    .toColourspace('cmyk')
    .jpeg({ quality: 100, chromaSubsampling: '4:4:4' })
    .toBuffer()
  t.equal((await sharp(cmyk).metadata()).space, 'cmyk')
  const d = await decodeImage(cmyk, limits)
  t.equal(d.data.length, W * H * 3)
  const maxDiff = Math.max(...[...d.data].map((v, i) => Math.abs(v - muted[i]!)))
  t.ok(maxDiff < 25, `round trip through CMYK stays close (max diff ${maxDiff})`)
})

t.test('animated GIF and WebP: the first frame', async (t) => {
  const red = { r: 255, g: 0, b: 0 }
  const blue = { r: 0, g: 0, b: 255 }
  const green = { r: 0, g: 255, b: 0 }
  for (const format of ['gif', 'webp'] as const) {
    const frames = await Promise.all(
      [red, blue, green].map((background) => sharp({ create: { width: W, height: H, channels: 3, background } }).png().toBuffer()),
    )
    const animated = await sharp(frames, { join: { animated: true } })[format]({ loop: 0, ...(format === 'webp' ? { lossless: true } : {}) }).toBuffer()
    t.equal((await sharp(animated).metadata()).pages, 3, `${format} has 3 frames`)
    const d = await decodeImage(animated, limits)
    t.equal(d.height, H, `${format}: one frame tall, not a strip of frames`)
    t.ok(d.data[0]! > 200 && d.data[2]! < 50, `${format}: pixels of the first (red) frame`)
  }
})

t.test('multi-page TIFF: the first page', async (t) => {
  const pages = await Promise.all(
    [{ r: 0, g: 255, b: 0 }, { r: 0, g: 0, b: 255 }].map((background) => sharp({ create: { width: W, height: H, channels: 3, background } }).png().toBuffer()),
  )
  const tiff = await sharp(pages, { join: { animated: true } }).tiff().toBuffer()
  const d = await decodeImage(tiff, limits)
  t.equal(d.height, H)
  t.ok(d.data[1]! > 200 && d.data[2]! < 50, 'green first page')
})

t.test('EXIF orientation is applied (the model sees what a viewer shows)', async (t) => {
  const rotated = await base().jpeg({ quality: 100 }).withMetadata({ orientation: 6 }).toBuffer()
  const d = await decodeImage(rotated, limits)
  t.same([d.width, d.height], [H, W], 'orientation 6 turns 8x4 into 4x8')
})
