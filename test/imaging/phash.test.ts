import { readFileSync } from 'node:fs'
import sharp, { type Sharp } from 'sharp'
import t from 'tap'
import { cornerThumbnails, hammingDistance, hashBits, imageHashes, isPhash, isPhashCrops, lowDct, lumaThumbnail, nearDuplicateDistance, phash } from '../../src/imaging/phash.js'
import type { RgbImage } from '../../src/imaging/tensor.js'
import { samplePhotos } from '../helpers/paths.js'

async function rgb(input: Buffer | Sharp): Promise<RgbImage> {
  const s = Buffer.isBuffer(input) ? sharp(input) : input
  const { data, info } = await s.removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true })
  return { data, width: info.width, height: info.height }
}

function block(f: (x: number, y: number) => number): Float64Array {
  const b = new Float64Array(32 * 32)
  for (let y = 0; y < 32; y++) for (let x = 0; x < 32; x++) b[y * 32 + x] = f(x, y)
  return b
}

t.test('lowDct: a constant block has only a DC term, equal to the sum', async (t) => {
  const c = lowDct(block(() => 3))
  t.ok(Math.abs(c[0]! - 3 * 1024) < 1e-9)
  t.ok(c.slice(1).every((v) => Math.abs(v) < 1e-9), 'every AC coefficient is 0')
})

t.test('lowDct: a cosine of horizontal frequency u puts its energy in coefficient (u, 0) only', async (t) => {
  for (const u of [1, 3, 7]) {
    const c = lowDct(block((x) => Math.cos((Math.PI * (2 * x + 1) * u) / 64)))
    const peak = c.reduce((best, v, i) => (Math.abs(v) > Math.abs(c[best]!) ? i : best), 0)
    t.equal(peak, u, `u=${u}: the peak is at column ${u}, row 0`)
    t.ok(Math.abs(c[u]! - 16 * 32) < 1e-9, 'orthogonal basis: Σ cos² = 16 per row, 32 rows')
    t.ok([...c].every((v, i) => i === u || Math.abs(v) < 1e-9), 'nothing leaks into other coefficients')
  }
  const v = lowDct(block((_x, y) => Math.cos((Math.PI * (2 * y + 1) * 2) / 64)))
  t.ok(Math.abs(v[2 * 8]!) > 100, 'a vertical cosine lands in row 2, column 0')
  t.throws(() => lowDct(new Float64Array(10)), RangeError)
})

t.test('hashBits: coefficients above the median set bits, most significant first', async (t) => {
  const c = Float64Array.from({ length: 64 }, (_, i) => i)
  t.equal(hashBits(c), 0xffffffffn, 'the 32 largest (the last 32) are set')
  t.equal(hashBits(Float64Array.from({ length: 64 }, (_, i) => 63 - i)), 0xffffffff00000000n)
})

t.test('lumaThumbnail averages BT.601 luma over each cell', async (t) => {
  const w = 64
  const data = new Uint8Array(w * w * 3)
  for (let i = 0; i < w * w; i++) data.set([200, 100, 50], i * 3)
  const thumb = lumaThumbnail({ data, width: w, height: w })
  t.ok(thumb.every((v) => Math.abs(v - (0.299 * 200 + 0.587 * 100 + 0.114 * 50)) < 1e-9))
  t.equal(thumb.length, 1024)
})

t.test('cornerThumbnails: four crops of 128 of 135 grid samples, each anchored at its corner', async (t) => {
  // 135 columns and rows, one grid sample each: the left 7 columns are white, the rest black,
  // so the crops anchored left (top-left, bottom-left) see the white band and the right ones do not.
  const w = 135
  const data = new Uint8Array(w * w * 3)
  for (let y = 0; y < w; y++) for (let x = 0; x < 7; x++) data.fill(255, (y * w + x) * 3, (y * w + x) * 3 + 3)
  const [tl, tr, bl, br] = cornerThumbnails({ data, width: w, height: w })
  const column0 = (th: Float64Array) => th[0]!
  t.ok(Math.abs(column0(tl!) - 255) < 1e-9 && Math.abs(column0(bl!) - 255) < 1e-9, 'left-anchored crops: their first cells are the white band (4 of its 7 columns)')
  t.ok(Math.abs(tl![1]! - (3 * 255) / 4) < 1e-9, 'the second cell holds the band\'s last 3 columns and one black one')
  t.ok(tr!.every((v) => v === 0) && br!.every((v) => v === 0), 'right-anchored crops start past the band')
  const flat = new Uint8Array(50 * 40 * 3).fill(90)
  t.ok(cornerThumbnails({ data: flat, width: 50, height: 40 }).every((th) => th.length === 1024 && th.every((v) => Math.abs(v - 90) < 1e-9)), 'any size: averaged luma')
})

t.test('hammingDistance counts differing bits and rejects malformed hashes', async (t) => {
  t.equal(hammingDistance('0000000000000000', '0000000000000000'), 0)
  t.equal(hammingDistance('0000000000000000', 'ffffffffffffffff'), 64)
  t.equal(hammingDistance('8000000000000001', '0000000000000000'), 2)
  t.throws(() => hammingDistance('abc', '0000000000000000'), RangeError)
  t.notOk(isPhash('FFFFFFFFFFFFFFFF'), 'lower-case hex only')
})

const photos = samplePhotos().filter((p) => /idealo\/(aesthetic|4204)/.test(p)).slice(0, 6)

t.test('real photos: resized and recompressed copies hash alike, different photos do not', { skip: photos.length < 3 && 'no sample photos' }, async (t) => {
  const hashes: string[] = []
  for (const p of photos) {
    const bytes = readFileSync(p)
    const h = phash(await rgb(bytes))
    t.ok(isPhash(h), `${p}: 16 hex digits`)
    hashes.push(h)
    const meta = await sharp(bytes).metadata()
    const half = await rgb(sharp(bytes).resize(Math.round(meta.width! / 4)))
    t.ok(hammingDistance(h, phash(half)) <= 6, `${p}: a 25 % resize stays within 6 bits`)
    const q20 = await rgb(await sharp(bytes).jpeg({ quality: 20 }).toBuffer())
    t.ok(hammingDistance(h, phash(q20)) <= 6, `${p}: a quality-20 re-encode stays within 6 bits`)
  }
  for (let i = 0; i < hashes.length; i++) {
    for (let j = i + 1; j < hashes.length; j++) t.ok(hammingDistance(hashes[i]!, hashes[j]!) > 12, `${photos[i]} vs ${photos[j]}: far apart`)
  }
})

t.test('real photos: one-sided crops meet the matching corner crop; distinct photos stay apart', { skip: photos.length < 3 && 'no sample photos' }, async (t) => {
  const all: ReturnType<typeof imageHashes>[] = []
  for (const p of photos) {
    const bytes = readFileSync(p)
    const original = imageHashes(await rgb(bytes))
    t.ok(isPhashCrops(original.phashCrops), `${p}: four 16-hex-digit crop hashes`)
    t.equal(original.phash, phash(await rgb(bytes)), 'the whole-frame hash is phash, unchanged')
    all.push(original)
    const { width: w, height: h } = (await sharp(bytes).metadata()) as { width: number; height: number }
    const dx = Math.round(w * 0.05)
    const dy = Math.round(h * 0.05)
    // 5 % off the left and top edges, and (a direction the bench's variant set does not use) off the right and bottom.
    for (const [left, top] of [[dx, dy], [0, 0]] as const) {
      const cropped = imageHashes(await rgb(sharp(bytes).extract({ left, top, width: w - dx, height: h - dy })))
      const d = nearDuplicateDistance(cropped, original)!
      t.ok(d <= 10, `${p}: 5 % cropped at (${left}, ${top}) is ${d} bits away (whole frames alone: ${hammingDistance(cropped.phash, original.phash)})`)
    }
  }
  for (let i = 0; i < all.length; i++) {
    for (let j = i + 1; j < all.length; j++) t.ok(nearDuplicateDistance(all[i]!, all[j]!)! > 14, `${photos[i]} vs ${photos[j]}: far apart with crops too`)
  }
})
