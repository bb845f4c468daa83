import t from 'tap'
import { nearestIndices, normalizationTable, writeTensor } from '../../src/imaging/tensor.js'

t.test('nearestIndices follows PIL: output i samples floor((i + 0.5) * in / out)', async (t) => {
  for (const [inSize, outSize] of [[640, 224], [224, 224], [100, 224], [1, 224], [4000, 224], [225, 224], [7, 3]] as const) {
    const idx = nearestIndices(inSize, outSize)
    const expected = Array.from({ length: outSize }, (_, i) => Math.floor(((i + 0.5) * inSize) / outSize))
    t.same(Array.from(idx), expected, `${inSize} -> ${outSize}`)
    t.ok(idx.every((v) => v < inSize), 'indices stay inside the source')
  }
  t.same(Array.from(nearestIndices(4, 2)), [1, 3], 'downscale by 2 takes the second of each pair, as PIL does')
  t.same(Array.from(nearestIndices(2, 4)), [0, 0, 1, 1], 'upscale repeats')
})

t.test('normalizationTable equals float32(float32(v / 127.5) - 1) for every byte', async (t) => {
  const lut = normalizationTable(1 / 127.5, -1)
  let mismatches = 0
  for (let v = 0; v < 256; v++) if (lut[v] !== Math.fround(Math.fround(v / 127.5) - 1)) mismatches++
  t.equal(mismatches, 0)
  t.equal(lut[0], -1)
  t.equal(lut[255], 1)
})

t.test('writeTensor fills NHWC at an offset without touching the rest', async (t) => {
  const data = new Uint8Array([0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110]) // 2x2 RGB
  const lut = normalizationTable(1, 0)
  const out = new Float32Array(2 + 2 * 2 * 3).fill(-7)
  writeTensor({ data, width: 2, height: 2 }, { width: 2, height: 2, lut }, out, 2)
  t.same(Array.from(out.subarray(0, 2)), [-7, -7])
  t.same(Array.from(out.subarray(2)), Array.from(data))
})
