/**
 * A 64-bit perceptual hash (pHash) of an already decoded image, for near-duplicate
 * detection: the same rule as imagehash/imagededup's PHash (luma, 32×32 downsample, 2-D
 * DCT, the 8×8 lowest frequencies compared with their median), computed from the pixels
 * the pipeline decoded anyway. npm's phash packages decode the file again themselves.
 *
 * The 32×32 downsample averages a fixed grid of 4×4 nearest samples per cell (128×128
 * reads in all) rather than every source pixel: a full pass over a 12-megapixel photo costs
 * tens of milliseconds, more than the 2 % of an image's CPU this hash may take, and 16
 * samples a cell already average out JPEG noise and resampling differences (see
 * docs/near-duplicates.md for the measured recall).
 *
 * Beside the whole frame, the same hash of four corner crops (`phashCrops`): a copy that
 * a supplier cropped on one side is a shifted and rescaled picture, which moves the 8×8
 * low frequencies enough that a 5 % one-sided crop lands beyond the threshold about one
 * time in ten; compared with the matching corner crop of the other copy it is nearly the
 * same picture again. See nearDuplicateDistance.
 */
import { nearestIndices, type RgbImage } from './tensor.js'

const SIZE = 32
const LOW = 8
const SAMPLES_PER_CELL = 4
const GRID = SIZE * SAMPLES_PER_CELL

/** cos(π (2x + 1) u / 2N) for u < 8, x < 32: the DCT-II basis, row u. */
const BASIS = (() => {
  const b = new Float64Array(LOW * SIZE)
  for (let u = 0; u < LOW; u++) for (let x = 0; x < SIZE; x++) b[u * SIZE + x] = Math.cos((Math.PI * (2 * x + 1) * u) / (2 * SIZE))
  return b
})()

/**
 * 32×32 luma (ITU-R BT.601 weights, as PIL's convert('L')), each cell the mean of a
 * 4×4 grid of nearest samples. Row-major, values 0..255. Integer sums in the loop: it
 * runs 16 384 times per image.
 */
export function lumaThumbnail(img: RgbImage): Float64Array {
  const xs = nearestIndices(img.width, GRID)
  const ys = nearestIndices(img.height, GRID)
  const cols = new Int32Array(GRID)
  for (let g = 0; g < GRID; g++) cols[g] = xs[g]! * 3
  const sums = new Int32Array(SIZE * SIZE)
  const { data, width } = img
  for (let gy = 0; gy < GRID; gy++) {
    const row = ys[gy]! * width * 3
    const cellRow = (gy >> 2) * SIZE
    for (let gx = 0; gx < GRID; gx++) {
      const s = row + cols[gx]!
      sums[cellRow + (gx >> 2)]! += 299 * data[s]! + 587 * data[s + 1]! + 114 * data[s + 2]!
    }
  }
  const out = new Float64Array(SIZE * SIZE)
  const n = SAMPLES_PER_CELL * SAMPLES_PER_CELL * 1000
  for (let i = 0; i < out.length; i++) out[i] = sums[i]! / n
  return out
}

/**
 * The 8×8 lowest-frequency coefficients of the (unnormalised) 2-D DCT-II of a 32×32
 * block, row-major: out[v*8+u] = Σy Σx f(x,y) cos(π(2x+1)u/64) cos(π(2y+1)v/64).
 * The basis is symmetric about the middle (cos of 31 − x is ± cos of x, + for even u), so
 * each pass sums 16 sums or differences of mirrored values instead of 32 values: it runs
 * five times per image (the whole frame and four corner crops).
 */
export function lowDct(block: Float64Array): Float64Array {
  if (block.length !== SIZE * SIZE) throw new RangeError(`lowDct: expected ${SIZE * SIZE} values, got ${block.length}`)
  const rows = new Float64Array(SIZE * LOW) // rows[y*8+u]: DCT along x of row y
  const even = new Float64Array(HALF)
  const odd = new Float64Array(HALF)
  for (let y = 0; y < SIZE; y++) {
    const r = y * SIZE
    for (let x = 0; x < HALF; x++) {
      const a = block[r + x]!
      const b = block[r + SIZE - 1 - x]!
      even[x] = a + b
      odd[x] = a - b
    }
    for (let u = 0; u < LOW; u++) rows[y * LOW + u] = halfDot(u & 1 ? odd : even, u)
  }
  const out = new Float64Array(LOW * LOW)
  for (let u = 0; u < LOW; u++) {
    for (let y = 0; y < HALF; y++) {
      const a = rows[y * LOW + u]!
      const b = rows[(SIZE - 1 - y) * LOW + u]!
      even[y] = a + b
      odd[y] = a - b
    }
    for (let v = 0; v < LOW; v++) out[v * LOW + u] = halfDot(v & 1 ? odd : even, v)
  }
  return out
}

const HALF = SIZE / 2

/** Σ x<16 of values[x] · cos(π(2x+1)u/64). */
function halfDot(values: Float64Array, u: number): number {
  let s = 0
  const base = u * SIZE
  for (let x = 0; x < HALF; x++) s += values[x]! * BASIS[base + x]!
  return s
}

/** 64 bits, coefficient i (row-major) as bit 63 - i: set when above the median of the 64. */
export function hashBits(coefficients: Float64Array): bigint {
  const median = middlePair(Float64Array.from(coefficients))
  let hi = 0
  let lo = 0
  for (let i = 0; i < 32; i++) {
    hi = (hi << 1) | (coefficients[i]! > median ? 1 : 0)
    lo = (lo << 1) | (coefficients[i + 32]! > median ? 1 : 0)
  }
  return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0)
}

/**
 * The mean of the 32nd and 33rd smallest of 64 values (their median), by selection rather
 * than a full sort; reorders `v`.
 */
function middlePair(v: Float64Array): number {
  const k = v.length >> 1 // the 33rd smallest, at index 32 once selected
  let left = 0
  let right = v.length - 1
  while (left < right) {
    const pivot = v[(left + right) >> 1]!
    let i = left
    let j = right
    while (i <= j) {
      while (v[i]! < pivot) i++
      while (v[j]! > pivot) j--
      if (i <= j) {
        const t = v[i]!
        v[i] = v[j]!
        v[j] = t
        i++
        j--
      }
    }
    if (k <= j) right = j
    else if (k >= i) left = i
    else break
  }
  let below = -Infinity // the 32nd smallest: the largest of the values before index 32
  for (let i = 0; i < k; i++) if (v[i]! > below) below = v[i]!
  return (below + v[k]!) / 2
}

const hex = (bits: bigint): string => bits.toString(16).padStart(16, '0')

/** The image's pHash as 16 lower-case hex digits. */
export function phash(img: RgbImage): string {
  return hex(hashBits(lowDct(lumaThumbnail(img))))
}

/**
 * Corner crops sample a 135×135 grid of the whole frame and take 128×128 of it from each
 * corner (128/135 ≈ 94.8 % of width and height), so every crop's thumbnail cell averages
 * a uniform 4×4 of samples, as the whole-frame one does, from one pass over the pixels.
 */
const CROP_GRID = 135
const CROP_OFFSET = CROP_GRID - GRID

/** Corner order of `phashCrops`: top-left, top-right, bottom-left, bottom-right, as [x, y] grid offsets. */
const CORNERS = [
  [0, 0],
  [CROP_OFFSET, 0],
  [0, CROP_OFFSET],
  [CROP_OFFSET, CROP_OFFSET],
] as const

/**
 * The summed-area table of cornerThumbnails, reused: 148 KB allocated per image cost more in
 * garbage collection than the table takes to fill. The function is synchronous, and each
 * thread or process has its own module instance.
 */
const SAT = new Float64Array((CROP_GRID + 1) * (CROP_GRID + 1))

/**
 * The 32×32 luma thumbnails (as lumaThumbnail) of the four corner crops, in CORNERS order.
 * The 135×135 samples go into a summed-area table, so each crop cell is four reads
 * instead of 16 additions: the crops overlap almost entirely, and summing each anew cost
 * three times the sampling.
 */
export function cornerThumbnails(img: RgbImage): Float64Array[] {
  const xs = nearestIndices(img.width, CROP_GRID)
  const ys = nearestIndices(img.height, CROP_GRID)
  const cols = new Int32Array(CROP_GRID)
  for (let g = 0; g < CROP_GRID; g++) cols[g] = xs[g]! * 3
  const { data, width } = img
  // sat[(y+1)*S + x+1]: sum of 1000·luma over samples [0..y]×[0..x]; up to 18 225 × 255 000, beyond int32.
  // Row 0 and column 0 stay 0; every other cell is written before it is read.
  const S = CROP_GRID + 1
  const sat = SAT
  for (let gy = 0; gy < CROP_GRID; gy++) {
    const row = ys[gy]! * width * 3
    const above = gy * S + 1
    const here = above + S
    let rowSum = 0
    for (let gx = 0; gx < CROP_GRID; gx++) {
      const s = row + cols[gx]!
      rowSum += 299 * data[s]! + 587 * data[s + 1]! + 114 * data[s + 2]!
      sat[here + gx] = sat[above + gx]! + rowSum
    }
  }
  const n = SAMPLES_PER_CELL * SAMPLES_PER_CELL * 1000
  const step = SAMPLES_PER_CELL
  return CORNERS.map(([ox, oy]) => {
    const out = new Float64Array(SIZE * SIZE)
    for (let cy = 0; cy < SIZE; cy++) {
      const top = (oy + cy * step) * S + ox
      const bottom = top + step * S
      for (let cx = 0; cx < SIZE; cx++) {
        const x = cx * step
        out[cy * SIZE + cx] = (sat[bottom + x + step]! - sat[top + x + step]! - sat[bottom + x]! + sat[top + x]!) / n
      }
    }
    return out
  })
}

/** pHashes of the four corner crops (cornerThumbnails), top-left, top-right, bottom-left, bottom-right. */
export function cornerHashes(img: RgbImage): string[] {
  return cornerThumbnails(img).map((t) => hex(hashBits(lowDct(t))))
}

/** What near-duplicate detection knows of an image; either may be missing (results from older versions). */
export interface ImageHashes {
  /** Whole-frame pHash. */
  phash?: string | undefined
  /** The four corner-crop pHashes (cornerHashes). */
  phashCrops?: readonly string[] | undefined
}

/** Both hashes of a decoded image, as /score and batch lines carry them. */
export function imageHashes(img: RgbImage): { phash: string; phashCrops: string[] } {
  return { phash: phash(img), phashCrops: cornerHashes(img) }
}

const HEX64 = /^[0-9a-f]{16}$/

export function isPhash(value: unknown): value is string {
  return typeof value === 'string' && HEX64.test(value)
}

export function isPhashCrops(value: unknown): value is string[] {
  return Array.isArray(value) && value.length === CORNERS.length && value.every(isPhash)
}

/** Bits that differ between two hashes (0..64). */
export function hammingDistance(a: string, b: string): number {
  if (!isPhash(a) || !isPhash(b)) throw new RangeError(`hammingDistance: expected two 16-hex-digit hashes, got ${JSON.stringify(a)} and ${JSON.stringify(b)}`)
  let x = BigInt(`0x${a}`) ^ BigInt(`0x${b}`)
  let n = 0
  while (x !== 0n) {
    x &= x - 1n
    n++
  }
  return n
}

/**
 * The distance between two images' hashes: the smallest of whole frame against whole
 * frame, and each whole frame against the other's corner crops, so a copy cropped on one
 * side (or cropped more than the other) meets the corner crop of the other that shows
 * the same part of the scene. Crops are not compared with crops: two crops of one frame
 * are compared with the whole frame already, and every extra comparison is one more
 * chance for two distinct photos to come close. Without crops on either side this is the
 * whole-frame distance (results written before phashCrops existed); without a whole-frame
 * hash on either side, undefined (never near-duplicates).
 */
export function nearDuplicateDistance(a: ImageHashes, b: ImageHashes): number | undefined {
  if (a.phash === undefined || b.phash === undefined) return undefined
  let d = hammingDistance(a.phash, b.phash)
  for (const c of b.phashCrops ?? []) d = Math.min(d, hammingDistance(a.phash, c))
  for (const c of a.phashCrops ?? []) d = Math.min(d, hammingDistance(c, b.phash))
  return d
}

/**
 * Below this distance two hashes say something about each other: no two distinct sample
 * photos came closer than 20 bits (bench/near-duplicates.ts), unrelated ones are ~32 apart.
 */
export const UNRELATED_DISTANCE = 20

/**
 * Similarity of two images on 0..1: 1 − nearDuplicateDistance/20, floored at 0. Distances
 * of 20 and more are the noise between unrelated photos and score 0, so diverse selection
 * does not penalise a photo for a chance resemblance; identical hashes score 1. Without
 * both whole-frame hashes: 0 (nothing known, nothing penalised).
 */
export function hashSimilarity(a: ImageHashes | undefined, b: ImageHashes | undefined): number {
  const d = a && b ? nearDuplicateDistance(a, b) : undefined
  return d === undefined ? 0 : Math.max(0, 1 - d / UNRELATED_DISTANCE)
}
