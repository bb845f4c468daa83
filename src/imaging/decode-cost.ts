import sharp, { type Metadata } from 'sharp'
import { NimaError } from '../errors.js'
import { acceptedFormat, toDecodeError } from './decode.js'
import type { ImageFormat } from './formats.js'
import { progressiveCoefficientBytes, readJpegStructure } from './jpeg-structure.js'
import type { Size } from './preprocess.js'

/**
 * What decoding an image will cost, read from its header before any pixel is decoded,
 * and the refusals that follow from it: too many pixels (413), too many JPEG scans
 * (422), no frame header at all (422).
 */
export interface DecodeCostLimits {
  maxInputPixels: number
  /** Most SOS segments accepted in one JPEG (progressive files in the wild use about 10). */
  maxJpegScans: number
}

export interface ImageHeader {
  format: ImageFormat
  width: number
  height: number
  /** Bands the decoder produces before the conversion to RGB (1..5). */
  channels: number
  bytesPerSample: number
  /** int16 DCT coefficients a progressive JPEG decode holds; 0 for everything else. */
  coefficientBytes: number
  /** A JPEG's scans (SOS segments); 1 for everything else. */
  scans: number
}

// libjpeg-turbo's JPEG_MAX_DIMENSION: larger frames fail inside the decoder.
const JPEG_MAX_DIMENSION = 65500

const BYTES_PER_SAMPLE: Record<string, number> = { uchar: 1, char: 1, ushort: 2, short: 2, uint: 4, int: 4, float: 4, complex: 8, double: 8, dpcomplex: 16 }

/**
 * Upper estimate of the bytes one decode holds at its peak: the decoder's own image at
 * source depth (bands × bytes per sample per pixel; libvips materialises it for
 * rotation, interlaced PNG, WebP, AVIF and tiled TIFF; a baseline JPEG streams and uses
 * less), the 8-bit RGB output (3 bytes per pixel), and for a progressive JPEG every DCT
 * coefficient of every component (64 int16 per 8×8 block) until the last scan.
 * `decoded`: the size the decoder makes where it reduces on load (PREPROCESS=fast,
 * preprocess.ts fastDecodedSize); the coefficients stay at the photo's full size.
 */
export function decodeBytesEstimate(
  h: Pick<ImageHeader, 'width' | 'height' | 'channels' | 'bytesPerSample' | 'coefficientBytes'>,
  decoded: Size = h,
): number {
  const pixels = decoded.width * decoded.height
  return pixels * h.channels * h.bytesPerSample + pixels * 3 + h.coefficientBytes
}

export async function readImageHeader(bytes: Buffer, limits: DecodeCostLimits): Promise<ImageHeader> {
  const format = acceptedFormat(bytes)
  const header = format === 'jpeg' ? jpegHeader(bytes, limits) : await sharpHeader(bytes, format)
  if (header.width * header.height > limits.maxInputPixels) {
    throw new NimaError('NIMA_IMAGE_TOO_LARGE', 'The image has more pixels than MAX_INPUT_PIXELS allows')
  }
  return header
}

function jpegHeader(bytes: Buffer, limits: DecodeCostLimits): ImageHeader {
  const s = readJpegStructure(bytes, limits.maxJpegScans)
  if (s.stoppedEarly) {
    throw new NimaError('NIMA_TOO_MANY_SCANS', `The JPEG image has more than ${limits.maxJpegScans} scans (JPEG_MAX_SCANS); progressive JPEGs in the wild use about 10`)
  }
  const f = s.frame
  if (!f || f.width === 0 || f.height === 0 || f.components.length === 0) {
    throw new NimaError('NIMA_UNDECODABLE_IMAGE', 'The JPEG image is corrupt or not a valid JPEG file')
  }
  if (f.width > JPEG_MAX_DIMENSION || f.height > JPEG_MAX_DIMENSION) {
    throw new NimaError('NIMA_IMAGE_TOO_LARGE', `The JPEG image is wider or taller than the decoder supports (${JPEG_MAX_DIMENSION} pixels)`)
  }
  return {
    format: 'jpeg',
    width: f.width,
    height: f.height,
    channels: f.components.length,
    bytesPerSample: 1,
    coefficientBytes: f.progressive ? progressiveCoefficientBytes(f) : 0,
    scans: s.scans,
  }
}

async function sharpHeader(bytes: Buffer, format: ImageFormat): Promise<ImageHeader> {
  let m: Metadata
  try {
    // Header only: no pixel is decoded, so no pixel limit is needed here.
    m = await sharp(bytes, { limitInputPixels: false, pages: 1, page: 0 }).metadata()
  } catch (err) {
    throw toDecodeError(err, format)
  }
  const width = m.width ?? 0
  const height = m.pageHeight ?? m.height ?? 0
  if (width === 0 || height === 0) throw new NimaError('NIMA_UNDECODABLE_IMAGE', `The ${format.toUpperCase()} image is corrupt or not a valid ${format.toUpperCase()} file`)
  return { format, width, height, channels: m.channels ?? 4, bytesPerSample: BYTES_PER_SAMPLE[m.depth ?? 'uchar'] ?? 1, coefficientBytes: 0, scans: 1 }
}
