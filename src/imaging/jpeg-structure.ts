/**
 * A JPEG marker walker: frame header and number of scans, read before any pixel is
 * decoded. libjpeg absorbs every scan of a progressive file in one call, and each scan
 * walks the whole coefficient buffer, so the scan count is the cost that the pixel count
 * does not show (about 2,600 legal scans of a flat 16-MP image take 11 s to decode).
 *
 * The walk follows libjpeg's own reading rules, so it never counts fewer scans than the
 * decoder will run: fill bytes (FF FF…) before a marker, stuffed FF 00 and RSTn inside
 * entropy-coded data, garbage between segments skipped up to the next marker, and the
 * first EOI ends the image.
 */

export interface JpegComponent {
  /** Horizontal and vertical sampling factors (1..4). */
  h: number
  v: number
}

export interface JpegFrame {
  width: number
  height: number
  /** SOF2/6/10/14: the decoder keeps every coefficient of the image until the last scan. */
  progressive: boolean
  components: JpegComponent[]
}

export interface JpegStructure {
  frame: JpegFrame | undefined
  /** SOS markers seen; stops growing at `stopAfter` + 1. */
  scans: number
  /** The walk stopped early because `scans` passed `stopAfter`. */
  stoppedEarly: boolean
  /** The bytes ran out before EOI (libjpeg may still decode what came before). */
  truncated: boolean
}

const SOI = 0xd8
const EOI = 0xd9
const SOS = 0xda
const TEM = 0x01
const isRst = (m: number): boolean => m >= 0xd0 && m <= 0xd7
// SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC).
const isSof = (m: number): boolean => m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc
const isProgressiveSof = (m: number): boolean => m === 0xc2 || m === 0xc6 || m === 0xca || m === 0xce

/**
 * Index of the next marker code (the byte after its last FF) at or after `from`, as
 * libjpeg's next_marker finds it: anything before an FF is skipped, fill FFs are
 * skipped, FF 00 is a stuffed data byte and, inside a scan (`inScan`), RSTn belongs to
 * the entropy-coded data. -1 when the bytes end first.
 */
function nextMarker(b: Uint8Array, from: number, inScan: boolean): number {
  let i = from
  while (i < b.length) {
    // indexOf: a native scan, about 10× the JS loop over a photo's entropy-coded bytes.
    i = b.indexOf(0xff, i)
    if (i < 0) return -1
    let j = i + 1
    while (j < b.length && b[j] === 0xff) j += 1
    if (j >= b.length) return -1
    const m = b[j]!
    if (m === 0x00 || (inScan && isRst(m))) {
      i = j + 1
      continue
    }
    return j
  }
  return -1
}

/**
 * Walks the markers of `bytes` (which must start with SOI) and counts SOS segments,
 * stopping as soon as the count passes `stopAfter` (Infinity: walk to EOI).
 */
export function readJpegStructure(bytes: Uint8Array, stopAfter = Infinity): JpegStructure {
  const out: JpegStructure = { frame: undefined, scans: 0, stoppedEarly: false, truncated: false }
  if (bytes.length < 2 || bytes[0] !== 0xff || bytes[1] !== SOI) {
    out.truncated = true
    return out
  }
  let pos = 2
  for (;;) {
    const at = nextMarker(bytes, pos, false)
    if (at < 0) {
      out.truncated = true
      return out
    }
    const marker = bytes[at]!
    if (marker === EOI) return out
    if (marker === SOI || marker === TEM || isRst(marker)) {
      pos = at + 1
      continue
    }
    if (at + 2 >= bytes.length) {
      out.truncated = true
      return out
    }
    const length = (bytes[at + 1]! << 8) | bytes[at + 2]!
    const body = at + 3
    const end = at + 1 + length
    if (length < 2 || end > bytes.length) {
      out.truncated = true
      return out
    }
    if (isSof(marker) && out.frame === undefined) out.frame = parseFrame(bytes.subarray(body, end), isProgressiveSof(marker))
    if (marker === SOS) {
      out.scans += 1
      if (out.scans > stopAfter) {
        out.stoppedEarly = true
        return out
      }
      // The entropy-coded data runs to the next marker that is not RSTn.
      const next = nextMarker(bytes, end, true)
      if (next < 0) {
        out.truncated = true
        return out
      }
      pos = next - 1
      continue
    }
    pos = end
  }
}

function parseFrame(seg: Uint8Array, progressive: boolean): JpegFrame | undefined {
  if (seg.length < 6) return undefined
  const height = (seg[1]! << 8) | seg[2]!
  const width = (seg[3]! << 8) | seg[4]!
  const n = seg[5]!
  if (seg.length < 6 + 3 * n) return undefined
  const components: JpegComponent[] = []
  for (let i = 0; i < n; i++) {
    const hv = seg[6 + 3 * i + 1]!
    components.push({ h: hv >> 4, v: hv & 0x0f })
  }
  return { width, height, progressive, components }
}

/**
 * Bytes of DCT coefficients a progressive decode keeps for the whole image: each
 * component's blocks (padded to whole MCUs) × 64 coefficients × 2 bytes (JCOEF is int16).
 */
export function progressiveCoefficientBytes(frame: JpegFrame): number {
  const hMax = Math.max(1, ...frame.components.map((c) => c.h))
  const vMax = Math.max(1, ...frame.components.map((c) => c.v))
  const mcusX = Math.ceil(frame.width / (8 * hMax))
  const mcusY = Math.ceil(frame.height / (8 * vMax))
  let blocks = 0
  for (const c of frame.components) blocks += mcusX * Math.max(1, c.h) * mcusY * Math.max(1, c.v)
  return blocks * 64 * 2
}
