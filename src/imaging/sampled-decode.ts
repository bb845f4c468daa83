/**
 * One decode, and only what its callers read of it: the image's summary (identity,
 * size, perceptual hashes), nearest-neighbour samples at the model input sizes, and on
 * request a small display copy. The same function runs in a decode process
 * (decode-child.ts) and in the server process (admission.ts's inline lane), so both
 * lanes give the same answer, byte for byte; the full-resolution pixels never leave it.
 */
import sharp from 'sharp'
import { decodeImage } from './decode.js'
import type { ImageFormat } from './formats.js'
import { imageHashes } from './phash.js'
import { fastCover, jpegShrinkOnLoad, type Preprocess, type Size } from './preprocess.js'
import { sampleNearest, type RgbImage } from './tensor.js'

/** What a caller asks of the pixels. */
export interface PixelRequest {
  /** Model input sizes, [width, height] each: PIL's nearest rule (tensor.ts sampleNearest). */
  sizes: readonly (readonly [number, number])[]
  /**
   * Longest side of a display copy (fit inside, enlarged when smaller; libvips' default
   * kernel): the photo under /explain's score maps. Absent: none.
   */
  preview?: number
  /** preprocess.ts: 'exact' (absent) decodes in full; 'fast' shrinks on load first. */
  preprocess?: Preprocess
}

export interface DecodedSummary {
  /** sha256 of the bytes (decode.ts imageId). */
  id: string
  format: ImageFormat
  width: number
  height: number
  bytes: number
  /** Which preprocessing made the samples (and the pixels the hashes read). */
  preprocess: Preprocess
  /** Perceptual hash of the decoded pixels (phash.ts): full resolution, or the fast decode's. */
  phash: string
  /** Its four corner-crop hashes (phash.ts cornerHashes). */
  phashCrops: string[]
}

export interface DecodedPixels {
  image: DecodedSummary
  /** One RGB image per requested size, in the order asked. */
  samples: RgbImage[]
  /** The display copy, when asked for. */
  preview?: RgbImage
}

/**
 * Decodes `bytes` (decode.ts: the pixel limit from the header, orientation, sRGB) and
 * returns what `request` asks for. The caller has admitted the bytes (admission.ts).
 */
export async function decodeForRequest(bytes: Buffer, maxInputPixels: number, request: PixelRequest): Promise<DecodedPixels> {
  const preprocess = request.preprocess ?? 'exact'
  const cover = preprocess === 'fast' ? fastCover(request.sizes, request.preview) : undefined
  const reduced = cover ? await decoderReduction(bytes, cover) : undefined
  const img = await decodeImage(bytes, { maxInputPixels, ...(reduced ? { cover: cover! } : {}) })
  // A reduced decode is smaller than the photo: the summary reports the photo's own size.
  const { width, height } = reduced ?? img
  const image = { id: img.id, format: img.format, width, height, bytes: img.bytes, preprocess, ...imageHashes(img) }
  const samples = request.sizes.map(([w, h]) => sampleNearest(img, w, h))
  return request.preview === undefined ? { image, samples } : { image, samples, preview: await displayCopy(img, request.preview) }
}

/**
 * Whether the decoder can reduce this image on load and still cover `cover` (preprocess.ts):
 * libjpeg by a factor of 2 or more, libwebp by any; then the photo's size as a viewer shows
 * it (EXIF orientation applied), from the header. Undefined: a fast decode is the full one.
 */
async function decoderReduction(bytes: Buffer, cover: Size): Promise<Size | undefined> {
  // Unreadable here: the full decode gives the error every path gives.
  const meta = await sharp(bytes, { limitInputPixels: false, pages: 1 }).metadata().catch(() => undefined)
  if (!meta?.width || !meta.height) return undefined
  // sharp measures a turned photo against the box turned the same way.
  const box = (meta.orientation ?? 1) >= 5 ? { width: cover.height, height: cover.width } : cover
  const reduces =
    meta.format === 'jpeg' ? jpegShrinkOnLoad(meta.width, meta.height, box) > 1 : meta.format === 'webp' && Math.min(meta.width / box.width, meta.height / box.height) > 1
  return reduces ? meta.autoOrient : undefined
}

/**
 * The decoded pixels shrunk to fit `longest` × `longest`. They are this process's own
 * 8-bit sRGB pixels, oriented already, so no limit applies and nothing is decoded again.
 */
async function displayCopy(img: RgbImage, longest: number): Promise<RgbImage> {
  const { data, info } = await sharp(img.data, { raw: { width: img.width, height: img.height, channels: 3 }, limitInputPixels: false })
    .resize({ width: longest, height: longest, fit: 'inside' })
    .raw()
    .toBuffer({ resolveWithObject: true })
  return { data, width: info.width, height: info.height }
}
