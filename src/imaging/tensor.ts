/**
 * The preprocessing rule of the original NIMA pipeline, as pure functions:
 * Keras `load_img(path, target_size)` resizes with PIL's nearest neighbour, straight to
 * the target size (aspect ratio ignored, no crop), then MobileNet's
 * `preprocess_input` maps x to float32(x / 127.5) - 1.
 */

/**
 * Source index for each output index under PIL's nearest rule: output i samples
 * source floor((i + 0.5) * in / out). Computed in exact integer arithmetic, which
 * equals the real-valued rule (no rounding at the floor boundary).
 */
export function nearestIndices(inSize: number, outSize: number): Uint32Array {
  const idx = new Uint32Array(outSize)
  for (let i = 0; i < outSize; i++) idx[i] = Math.floor(((2 * i + 1) * inSize) / (2 * outSize))
  return idx
}

/**
 * 256-entry table from a 0..255 channel value to the model's input value, rounded
 * through float32 as Keras does (float32 division, then float32 subtraction).
 */
export function normalizationTable(scale: number, offset: number): Float32Array {
  const lut = new Float32Array(256)
  for (let v = 0; v < 256; v++) lut[v] = Math.fround(Math.fround(v * scale) + offset)
  return lut
}

export interface RgbImage {
  /** Interleaved 8-bit RGB, row-major, width*height*3 bytes. */
  data: Uint8Array
  width: number
  height: number
}

export interface TensorSpec {
  width: number
  height: number
  lut: Float32Array
}

/**
 * Writes one NHWC image into `out` at `offset` (a slot in a batch buffer), so the hot
 * path fills the batch directly instead of allocating per image.
 */
export function writeTensor(img: RgbImage, spec: TensorSpec, out: Float32Array, offset = 0): void {
  const xs = nearestIndices(img.width, spec.width)
  const ys = nearestIndices(img.height, spec.height)
  const { data, width } = img
  const lut = spec.lut
  let o = offset
  for (let y = 0; y < spec.height; y++) {
    const row = ys[y]! * width
    for (let x = 0; x < spec.width; x++) {
      const s = (row + xs[x]!) * 3
      out[o] = lut[data[s]!]!
      out[o + 1] = lut[data[s + 1]!]!
      out[o + 2] = lut[data[s + 2]!]!
      o += 3
    }
  }
}

export function tensorSize(spec: Pick<TensorSpec, 'width' | 'height'>): number {
  return spec.width * spec.height * 3
}

/**
 * The pixels `writeTensor` would read for a `width`×`height` input, as a small RGB image:
 * PIL's nearest rule applied once. Sampling is idempotent (nearestIndices(n, n) is the
 * identity), so writeTensor on the result equals writeTensor on the full image, value
 * for value, and a decoder process can send back ~150 KB instead of the full pixels.
 */
export function sampleNearest(img: RgbImage, width: number, height: number): RgbImage {
  const xs = nearestIndices(img.width, width)
  const ys = nearestIndices(img.height, height)
  const out = new Uint8Array(width * height * 3)
  let o = 0
  for (let y = 0; y < height; y++) {
    const row = ys[y]! * img.width
    for (let x = 0; x < width; x++) {
      const s = (row + xs[x]!) * 3
      out[o] = img.data[s]!
      out[o + 1] = img.data[s + 1]!
      out[o + 2] = img.data[s + 2]!
      o += 3
    }
  }
  return { data: out, width, height }
}

/**
 * The least and greatest value the preprocessing rule writes (channel values 0 and 255
 * through the table): a tensor a client preprocessed itself holds nothing outside them
 * (for MobileNet's rule, [-1, 1]).
 */
export function tensorValueRange(spec: Pick<TensorSpec, 'lut'>): { min: number; max: number } {
  let min = Infinity
  let max = -Infinity
  for (const v of spec.lut) {
    if (v < min) min = v
    if (v > max) max = v
  }
  return { min, max }
}
