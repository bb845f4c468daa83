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
 */
export function lowDct(block: Float64Array): Float64Array {
  if (block.length !== SIZE * SIZE) throw new RangeError(`lowDct: expected ${SIZE * SIZE} values, got ${block.length}`)
  const rows = new Float64Array(SIZE * LOW) // rows[y*8+u]: DCT along x of row y
  for (let y = 0; y < SIZE; y++) {
    for (let u = 0; u < LOW; u++) {
      let s = 0
      for (let x = 0; x < SIZE; x++) s += block[y * SIZE + x]! * BASIS[u * SIZE + x]!
      rows[y * LOW + u] = s
    }
  }
  const out = new Float64Array(LOW * LOW)
  for (let v = 0; v < LOW; v++) {
    for (let u = 0; u < LOW; u++) {
      let s = 0
      for (let y = 0; y < SIZE; y++) s += rows[y * LOW + u]! * BASIS[v * SIZE + y]!
      out[v * LOW + u] = s
    }
  }
  return out
}

/** 64 bits, coefficient i (row-major) as bit 63 - i: set when above the median of the 64. */
export function hashBits(coefficients: Float64Array): bigint {
  const sorted = Float64Array.from(coefficients).sort()
  const median = (sorted[31]! + sorted[32]!) / 2
  let bits = 0n
  for (let i = 0; i < 64; i++) bits = (bits << 1n) | (coefficients[i]! > median ? 1n : 0n)
  return bits
}

/** The image's pHash as 16 lower-case hex digits. */
export function phash(img: RgbImage): string {
  return hashBits(lowDct(lumaThumbnail(img))).toString(16).padStart(16, '0')
}

const HEX64 = /^[0-9a-f]{16}$/

export function isPhash(value: unknown): value is string {
  return typeof value === 'string' && HEX64.test(value)
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
 * Below this distance two hashes say something about each other: no two distinct sample
 * photos came closer than 20 bits (bench/near-duplicates.ts), unrelated ones are ~32 apart.
 */
export const UNRELATED_DISTANCE = 20

/**
 * Similarity of two hashes on 0..1: 1 − distance/20, floored at 0. Distances of 20 and
 * more are the noise between unrelated photos and score 0, so diverse selection does not
 * penalise a photo for a chance resemblance; identical hashes score 1. Without both
 * hashes: 0 (nothing known, nothing penalised).
 */
export function hashSimilarity(a: string | undefined, b: string | undefined): number {
  if (a === undefined || b === undefined) return 0
  return Math.max(0, 1 - hammingDistance(a, b) / UNRELATED_DISTANCE)
}
