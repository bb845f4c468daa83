/**
 * A minimal uncompressed RGB TIFF with its IFD first and pixel strips after it (the
 * layout many writers use), so that cutting the file or moving a strip offset leaves a
 * readable header that points past the data.
 */
export interface StripTiff {
  bytes: Buffer
  /** Byte offset of each strip's data. */
  stripOffsets: number[]
  /** Byte offset of the StripOffsets values (LONGs), to patch an offset in a test. */
  stripOffsetsAt: number
}

export function stripTiff(width: number, height: number, rowsPerStrip: number, pixel: (x: number, y: number) => [number, number, number]): StripTiff {
  const strips = Math.ceil(height / rowsPerStrip)
  const entries: [tag: number, type: number, count: number, value: number][] = []
  const nEntries = 10
  const ifdAt = 8
  const ifdEnd = ifdAt + 2 + nEntries * 12 + 4
  const bpsAt = ifdEnd
  const offsetsAt = bpsAt + 6
  const countsAt = offsetsAt + 4 * strips
  let dataAt = countsAt + 4 * strips
  const stripOffsets: number[] = []
  const stripCounts: number[] = []
  for (let s = 0; s < strips; s++) {
    const rows = Math.min(rowsPerStrip, height - s * rowsPerStrip)
    stripOffsets.push(dataAt)
    stripCounts.push(rows * width * 3)
    dataAt += rows * width * 3
  }
  const SHORT = 3
  const LONG = 4
  entries.push([256, SHORT, 1, width], [257, SHORT, 1, height], [258, SHORT, 3, bpsAt], [259, SHORT, 1, 1], [262, SHORT, 1, 2])
  entries.push([273, LONG, strips, strips === 1 ? stripOffsets[0]! : offsetsAt], [277, SHORT, 1, 3], [278, SHORT, 1, rowsPerStrip])
  entries.push([279, LONG, strips, strips === 1 ? stripCounts[0]! : countsAt], [284, SHORT, 1, 1])
  const b = Buffer.alloc(dataAt)
  b.write('II', 0, 'latin1')
  b.writeUInt16LE(42, 2)
  b.writeUInt32LE(ifdAt, 4)
  b.writeUInt16LE(nEntries, ifdAt)
  entries.forEach(([tag, type, count, value], i) => {
    const e = ifdAt + 2 + 12 * i
    b.writeUInt16LE(tag, e)
    b.writeUInt16LE(type, e + 2)
    b.writeUInt32LE(count, e + 4)
    if (type === SHORT && count === 1) b.writeUInt16LE(value, e + 8)
    else b.writeUInt32LE(value, e + 8)
  })
  b.writeUInt32LE(0, ifdAt + 2 + nEntries * 12)
  for (let i = 0; i < 3; i++) b.writeUInt16LE(8, bpsAt + 2 * i)
  stripOffsets.forEach((o, i) => b.writeUInt32LE(o, offsetsAt + 4 * i))
  stripCounts.forEach((c, i) => b.writeUInt32LE(c, countsAt + 4 * i))
  let o = stripOffsets[0]!
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const [r, g, bl] = pixel(x, y)
      b[o++] = r
      b[o++] = g
      b[o++] = bl
    }
  }
  return { bytes: b, stripOffsets, stripOffsetsAt: offsetsAt }
}

/** The three truncations of issue #12: a strip cut short, a strip offset past the end, the file cut in half. */
export function truncatedTiffs(): { name: string; bytes: Buffer }[] {
  const { bytes, stripOffsetsAt } = stripTiff(64, 64, 16, (x, y) => [x * 4, y * 4, 128])
  const pastEnd = Buffer.from(bytes)
  pastEnd.writeUInt32LE(1_165_784_795, stripOffsetsAt + 4 * 2)
  return [
    { name: 'TIFF with its last strip cut short', bytes: bytes.subarray(0, bytes.length - 100) },
    { name: 'TIFF with a strip offset past the end of the file', bytes: pastEnd },
    { name: 'TIFF cut in half', bytes: bytes.subarray(0, bytes.length >> 1) },
  ]
}
