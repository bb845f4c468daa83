import { readFileSync } from 'node:fs'
import sharp from 'sharp'
import t from 'tap'
import { progressiveCoefficientBytes, readJpegStructure } from '../../src/imaging/jpeg-structure.js'
import { manyScanJpeg } from '../helpers/many-scan-jpeg.js'
import { samplePhotos } from '../helpers/paths.js'

const seg = (marker: number, body: number[]): number[] => [0xff, marker, (body.length + 2) >> 8, (body.length + 2) & 0xff, ...body]
const sof = (marker: number, w: number, h: number, hv: number[]): number[] =>
  seg(marker, [8, h >> 8, h & 0xff, w >> 8, w & 0xff, hv.length, ...hv.flatMap((v, i) => [i + 1, v, 0])])
const sos = seg(0xda, [1, 1, 0, 0, 63, 0])
const jpeg = (...parts: number[][]): Buffer => Buffer.from([0xff, 0xd8, ...parts.flat()])

t.test('counts SOS markers and reads the frame', async (t) => {
  const s = readJpegStructure(jpeg(sof(0xc2, 300, 200, [0x22, 0x11, 0x11]), sos, [1, 2, 3], sos, [4], [0xff, 0xd9]))
  t.same(s, { frame: { width: 300, height: 200, progressive: true, components: [{ h: 2, v: 2 }, { h: 1, v: 1 }, { h: 1, v: 1 }] }, scans: 2, stoppedEarly: false, truncated: false })
  t.equal(readJpegStructure(jpeg(sof(0xc0, 8, 8, [0x11]), sos, [0], [0xff, 0xd9])).frame?.progressive, false, 'SOF0 is baseline')
})

t.test('entropy-coded data: stuffed FF 00, RSTn and fill bytes are not markers', async (t) => {
  // FF 00 DA would look like SOS to a naive byte search; FF D3 is a restart marker inside the scan.
  const data = [0x12, 0xff, 0x00, 0xda, 0x00, 0x08, 0xff, 0xd3, 0x34, 0xff, 0x00, 0xff, 0xd7, 0x56]
  const s = readJpegStructure(jpeg(sof(0xc2, 16, 16, [0x11]), sos, data, [0xff, 0xff, 0xff], sos, data, [0xff, 0xd9]))
  t.equal(s.scans, 2)
  t.equal(s.truncated, false)
})

t.test('garbage between segments is skipped as libjpeg skips it; scans after it still count', async (t) => {
  const s = readJpegStructure(jpeg(sof(0xc2, 16, 16, [0x11]), [0x00, 0x11, 0x22], sos, [0], [0xab, 0xcd], sos, [0], [0xff, 0xd9]))
  t.equal(s.scans, 2)
})

t.test('the first EOI ends the image: scans after it are not decoded and not counted', async (t) => {
  const s = readJpegStructure(jpeg(sof(0xc2, 16, 16, [0x11]), sos, [0], [0xff, 0xd9], sos, [0], sos, [0]))
  t.equal(s.scans, 1)
})

t.test('stops as soon as the count passes stopAfter', async (t) => {
  const many = manyScanJpeg({ width: 64, height: 64 })
  t.same(readJpegStructure(many, 100), { ...readJpegStructure(many, 100), scans: 101, stoppedEarly: true })
  t.equal(readJpegStructure(many).scans, 1 + 3 * 63 * 14, 'the generator writes every legal scan')
  t.equal(readJpegStructure(many.subarray(0, 5000)).truncated, true, 'cut short: truncated')
  t.equal(readJpegStructure(Buffer.from([0xff, 0xd8, 0xff])).truncated, true)
  t.equal(readJpegStructure(Buffer.from('not a jpeg')).truncated, true)
})

t.test('real encoders: baseline has 1 scan, progressive about 10 (sample photos re-encoded by sharp)', { skip: samplePhotos().length === 0 ? '../shared/images not present' : false }, async (t) => {
  const photo = readFileSync(samplePhotos().find((p) => p.endsWith('.jpg'))!)
  const baseline = await sharp(photo).jpeg().toBuffer()
  const progressive = await sharp(photo).jpeg({ progressive: true }).toBuffer()
  const meta = await sharp(photo).metadata()
  t.equal(readJpegStructure(baseline).scans, 1)
  const p = readJpegStructure(progressive)
  t.ok(p.scans >= 5 && p.scans <= 20, `progressive: ${p.scans} scans`)
  t.same({ w: p.frame?.width, h: p.frame?.height, progressive: p.frame?.progressive }, { w: meta.width, h: meta.height, progressive: true })
})

t.test('progressive coefficient bytes: blocks padded to whole MCUs, 64 int16 each', async (t) => {
  // 4:2:0, 17x17: MCUs 16x16 → 2x2 MCUs; luma 4 blocks per MCU, chroma 1 each → 24 blocks.
  t.equal(progressiveCoefficientBytes({ width: 17, height: 17, progressive: true, components: [{ h: 2, v: 2 }, { h: 1, v: 1 }, { h: 1, v: 1 }] }), 24 * 128)
  t.equal(progressiveCoefficientBytes({ width: 4000, height: 4000, progressive: true, components: [{ h: 1, v: 1 }] }), 500 * 500 * 128)
})
