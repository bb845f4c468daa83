/**
 * A legal progressive JPEG of a flat grey image with as many scans as the standard
 * allows: one DC scan, then for every component and every AC coefficient k a first scan
 * (Ss = Se = k, Al = 13) and 13 successive-approximation refinements (Ah = Al + 1 down
 * to Al = 0): 1 + components × 63 × 14 scans (2,647 for colour). Every coefficient is 0,
 * so each AC scan is a few EOB runs: tiny on disk, yet libjpeg walks the whole
 * coefficient buffer once per scan.
 */

class BitWriter {
  readonly #bytes: number[] = []
  #acc = 0
  #n = 0

  write(value: number, bits: number): void {
    for (let i = bits - 1; i >= 0; i--) {
      this.#acc = (this.#acc << 1) | ((value >> i) & 1)
      this.#n += 1
      if (this.#n === 8) this.#flushByte()
    }
  }

  /** Pads the last byte with 1-bits, as the standard asks. */
  finish(): Buffer {
    if (this.#n > 0) this.write(0xff, 8 - this.#n)
    return Buffer.from(this.#bytes)
  }

  #flushByte(): void {
    this.#bytes.push(this.#acc)
    if (this.#acc === 0xff) this.#bytes.push(0x00) // byte stuffing
    this.#acc = 0
    this.#n = 0
  }
}

const segment = (marker: number, body: number[] | Buffer): Buffer => {
  const b = Buffer.from(body)
  return Buffer.concat([Buffer.from([0xff, marker, (b.length + 2) >> 8, (b.length + 2) & 0xff]), b])
}

/** Entropy data of one AC scan of `blocks` all-zero blocks: EOB runs (symbol k<<4 → 4-bit code k). */
function eobRuns(blocks: number): Buffer {
  const w = new BitWriter()
  let left = blocks
  while (left > 0) {
    const run = Math.min(left, 32767)
    const k = Math.floor(Math.log2(run))
    w.write(k, 4)
    if (k > 0) w.write(run - (1 << k), k)
    left -= run
  }
  return w.finish()
}

export interface ManyScanOptions {
  width: number
  height: number
  /** 1 (grey) or 3 (YCbCr, no subsampling). */
  components?: 1 | 3
  /** Keep only the first `maxScans` scans (still a valid file, less refined). */
  maxScans?: number
}

export function manyScanJpeg({ width, height, components = 3, maxScans = Infinity }: ManyScanOptions): Buffer {
  const ids = Array.from({ length: components }, (_, i) => i + 1)
  const parts: Buffer[] = [Buffer.from([0xff, 0xd8])]
  parts.push(segment(0xdb, [0x00, ...new Array<number>(64).fill(1)]))
  parts.push(segment(0xc2, [8, height >> 8, height & 0xff, width >> 8, width & 0xff, components, ...ids.flatMap((id) => [id, 0x11, 0])]))
  // Codes per length 1..16: DC has one 1-bit code (category 0); AC has EOB0..EOB14 as 4-bit codes 0..14.
  const dcCounts = [1, ...new Array<number>(15).fill(0)]
  const acCounts = [0, 0, 0, 15, ...new Array<number>(12).fill(0)]
  parts.push(segment(0xc4, [0x00, ...dcCounts, 0x00]))
  parts.push(segment(0xc4, [0x10, ...acCounts, ...Array.from({ length: 15 }, (_, k) => k << 4)]))

  const blocks = Math.ceil(width / 8) * Math.ceil(height / 8)
  let scans = 0
  const scan = (header: number[], data: Buffer): boolean => {
    if (scans >= maxScans) return false
    parts.push(segment(0xda, header), data)
    scans += 1
    return true
  }
  // DC: every block's difference is category 0, one 0-bit each.
  const dc = new BitWriter()
  for (let i = 0; i < blocks * components; i++) dc.write(0, 1)
  scan([components, ...ids.flatMap((id) => [id, 0x00]), 0, 0, 0x00], dc.finish())
  const ac = eobRuns(blocks)
  outer: for (const id of ids) {
    for (let k = 1; k <= 63; k++) {
      if (!scan([1, id, 0x00, k, k, 0x0d], ac)) break outer
      for (let al = 12; al >= 0; al--) if (!scan([1, id, 0x00, k, k, ((al + 1) << 4) | al], ac)) break outer
    }
  }
  parts.push(Buffer.from([0xff, 0xd9]))
  return Buffer.concat(parts)
}
