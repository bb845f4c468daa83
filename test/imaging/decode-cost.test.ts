import { readFileSync } from 'node:fs'
import { basename } from 'node:path'
import sharp from 'sharp'
import t from 'tap'
import { decodeImage } from '../../src/imaging/decode.js'
import { decodeBytesEstimate, readImageHeader } from '../../src/imaging/decode-cost.js'
import { normalizationTable, sampleNearest, writeTensor } from '../../src/imaging/tensor.js'
import { manyScanJpeg } from '../helpers/many-scan-jpeg.js'
import { samplePhotos } from '../helpers/paths.js'
import { stripTiff, truncatedTiffs } from '../helpers/tiff-strips.js'

const limits = { maxInputPixels: 64_000_000, maxJpegScans: 100 }
// Decoder internals that must never reach a client (issue #12, item 6).
const INTERNALS = /vips|libjpeg|tiff2vips|seek|source:|scanline|\bstrip\b|buffer/i

t.test('estimate: source image at its depth + 8-bit RGB output + progressive coefficients', async (t) => {
  t.equal(decodeBytesEstimate({ width: 1000, height: 500, channels: 4, bytesPerSample: 2, coefficientBytes: 0 }), 500_000 * 8 + 500_000 * 3)
  t.equal(decodeBytesEstimate({ width: 10, height: 10, channels: 3, bytesPerSample: 1, coefficientBytes: 1234 }), 300 + 300 + 1234)
})

t.test('header of a progressive JPEG: frame from the walker, coefficients counted', async (t) => {
  const h = await readImageHeader(manyScanJpeg({ width: 160, height: 80, maxScans: 20 }), limits)
  t.same(h, { format: 'jpeg', width: 160, height: 80, channels: 3, bytesPerSample: 1, coefficientBytes: 20 * 10 * 3 * 128, scans: 20 })
  const baseline = await sharp({ create: { width: 64, height: 48, channels: 3, background: '#406080' } }).jpeg().toBuffer()
  t.equal((await readImageHeader(baseline, limits)).coefficientBytes, 0, 'baseline: none kept')
})

t.test('header of other formats from sharp metadata (no pixels decoded)', async (t) => {
  const png16 = await sharp({ create: { width: 30, height: 20, channels: 4, background: '#102030' } }).png().toBuffer()
  t.same(await readImageHeader(png16, limits), { format: 'png', width: 30, height: 20, channels: 4, bytesPerSample: 1, coefficientBytes: 0, scans: 1 })
  const tiff = stripTiff(64, 32, 8, () => [1, 2, 3]).bytes
  t.same(await readImageHeader(tiff, limits), { format: 'tiff', width: 64, height: 32, channels: 3, bytesPerSample: 1, coefficientBytes: 0, scans: 1 })
})

t.test('refusals from the header, with clean messages', async (t) => {
  await t.rejects(readImageHeader(manyScanJpeg({ width: 64, height: 64 }), limits), { code: 'NIMA_TOO_MANY_SCANS', message: /more than 100 scans \(JPEG_MAX_SCANS\)/ })
  t.equal((await readImageHeader(manyScanJpeg({ width: 64, height: 64, maxScans: 100 }), limits)).width, 64, '100 scans is still allowed')
  await t.rejects(readImageHeader(manyScanJpeg({ width: 9000, height: 8000, maxScans: 1 }), limits), { code: 'NIMA_IMAGE_TOO_LARGE', message: /MAX_INPUT_PIXELS/ })
  await t.rejects(readImageHeader(manyScanJpeg({ width: 65535, height: 1, maxScans: 1 }), limits), { code: 'NIMA_IMAGE_TOO_LARGE', message: 'The JPEG image is wider or taller than the decoder supports (65500 pixels)' })
  await t.rejects(readImageHeader(Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0, 4, 1, 2]), limits), { code: 'NIMA_UNDECODABLE_IMAGE' })
  await t.rejects(readImageHeader(Buffer.alloc(0), limits), { code: 'NIMA_MISSING_IMAGE' })
  await t.rejects(readImageHeader(Buffer.from('BM1234567890'), limits), { code: 'NIMA_UNSUPPORTED_MEDIA_TYPE' })
})

t.test('truncated TIFFs (issue #12, item 4) are refused with 422 and a clean message', async (t) => {
  t.equal((await decodeImage(stripTiff(64, 64, 16, () => [9, 9, 9]).bytes, limits)).width, 64, 'the intact file decodes')
  for (const { name, bytes } of truncatedTiffs()) {
    const err = (await decodeImage(bytes, limits).catch((e: unknown) => e)) as { code?: string; message?: string; cause?: unknown }
    t.equal(err.code, 'NIMA_UNDECODABLE_IMAGE', name)
    t.notMatch(err.message ?? '', INTERNALS, `${name}: "${err.message}" names no decoder internals`)
    t.ok(err.cause instanceof Error, `${name}: the decoder's own message is kept as cause for the log`)
  }
})

t.test('JPEG decoder messages are mapped to clean ones', async (t) => {
  const photo = readFileSync(samplePhotos().find((p) => p.endsWith('.jpg'))!)
  for (const bytes of [photo.subarray(0, 2000), Buffer.concat([photo.subarray(0, 600), Buffer.alloc(3000, 0x5a)])]) {
    const err = (await decodeImage(bytes, limits).catch((e: unknown) => e)) as { code?: string; message?: string }
    t.equal(err.code, 'NIMA_UNDECODABLE_IMAGE')
    t.notMatch(err.message ?? '', INTERNALS, `"${err.message}"`)
  }
})

t.test('sampling first, then writeTensor, equals writeTensor on the full image (every sample photo)', { skip: samplePhotos().length === 0 ? '../shared/images not present' : false }, async (t) => {
  const spec = { width: 224, height: 224, lut: normalizationTable(1 / 127.5, -1) }
  for (const path of samplePhotos()) {
    const img = await decodeImage(readFileSync(path), { maxInputPixels: 1e8 })
    const full = new Float32Array(224 * 224 * 3)
    const sampled = new Float32Array(224 * 224 * 3)
    writeTensor(img, spec, full)
    writeTensor(sampleNearest(img, 224, 224), spec, sampled)
    let diff = 0
    for (let i = 0; i < full.length; i++) if (full[i] !== sampled[i]) diff++
    t.equal(diff, 0, `${basename(path)}: identical`)
  }
})
