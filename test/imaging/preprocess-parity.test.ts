import { readFileSync } from 'node:fs'
import { basename } from 'node:path'
import t from 'tap'
import sharp from 'sharp'
import { PNG } from 'pngjs'
import { decodeImage } from '../../src/imaging/decode.js'
import { normalizationTable, writeTensor } from '../../src/imaging/tensor.js'
import { idealoInputSpec } from '../../src/models/manifest.js'
import { samplePhotos } from '../helpers/paths.js'

/**
 * The tensor the service builds must equal, value for value, Keras' rule applied to the
 * fully decoded pixels: nearest neighbour with PIL's convention, x/127.5 - 1 in float32.
 * The reference below is deliberately plain: real-valued index maths, per-pixel float.
 */
function referenceTensor(rgb: Uint8Array, w: number, h: number, channelsIn: number, size = 224): Float32Array {
  const out = new Float32Array(size * size * 3)
  for (let y = 0; y < size; y++) {
    const sy = Math.floor(((y + 0.5) * h) / size)
    for (let x = 0; x < size; x++) {
      const sx = Math.floor(((x + 0.5) * w) / size)
      for (let c = 0; c < 3; c++) {
        const v = rgb[(sy * w + sx) * channelsIn + c]!
        out[(y * size + x) * 3 + c] = Math.fround(Math.fround(v / 127.5) - 1)
      }
    }
  }
  return out
}

/** Fully decoded pixels, no resize: pngjs for PNG (a second, independent decoder), libjpeg via sharp for JPEG. */
async function fullyDecoded(path: string): Promise<{ data: Uint8Array; width: number; height: number; channels: number }> {
  const bytes = readFileSync(path)
  if (path.endsWith('.png')) {
    const png = PNG.sync.read(bytes)
    return { data: png.data, width: png.width, height: png.height, channels: 4 }
  }
  const { data, info } = await sharp(bytes).raw().toBuffer({ resolveWithObject: true })
  return { data, width: info.width, height: info.height, channels: info.channels }
}

const photos = samplePhotos()
const spec = idealoInputSpec()
const tensorSpec = { width: spec.width, height: spec.height, lut: normalizationTable(spec.normalization.scale, spec.normalization.offset) }

t.test('service tensor equals the reference rule on every sample photo', { skip: photos.length === 0 ? '../shared/images not present' : false }, async (t) => {
  let total = 0
  for (const path of photos) {
    const decoded = await decodeImage(readFileSync(path), { maxInputPixels: 1e8 })
    const mine = new Float32Array(224 * 224 * 3)
    writeTensor(decoded, tensorSpec, mine)
    const ref = await fullyDecoded(path)
    t.equal(decoded.width, ref.width, `${basename(path)} width`)
    const expected = referenceTensor(ref.data, ref.width, ref.height, ref.channels)
    let mismatches = 0
    for (let i = 0; i < expected.length; i++) if (mine[i] !== expected[i]) mismatches++
    t.equal(mismatches, 0, `${basename(path)} (${ref.width}x${ref.height}): ${expected.length} values identical`)
    total += expected.length
  }
  t.comment(`${photos.length} photos, ${total} tensor values compared, all identical`)
})

t.test("sharp's own nearest resize is NOT the same rule (why the service resizes itself)", { skip: photos.length === 0 ? '../shared/images not present' : false }, async (t) => {
  const jpeg = photos.find((p) => p.endsWith('hubble_deep_field.jpg')) ?? photos.find((p) => p.endsWith('.jpg'))!
  const bytes = readFileSync(jpeg)
  const { data } = await sharp(bytes).resize(224, 224, { kernel: 'nearest', fit: 'fill' }).raw().toBuffer({ resolveWithObject: true })
  const ref = await fullyDecoded(jpeg)
  const expected = referenceTensor(ref.data, ref.width, ref.height, ref.channels)
  let mismatches = 0
  for (let i = 0; i < expected.length; i++) if (Math.fround(Math.fround(data[i]! / 127.5) - 1) !== expected[i]) mismatches++
  t.ok(mismatches > 0, `sharp resize differs in ${mismatches} of ${expected.length} values on ${basename(jpeg)}`)
})
