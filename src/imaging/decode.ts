import { createHash } from 'node:crypto'
import sharp from 'sharp'
import { NimaError } from '../errors.js'
import { SUPPORTED_FORMATS, sniffFormat, type ImageFormat } from './formats.js'
import type { Size } from './preprocess.js'
import type { RgbImage } from './tensor.js'

export interface DecodeLimits {
  /** Largest width*height accepted; checked from the header before pixels are decoded. */
  maxInputPixels: number
  /**
   * PREPROCESS=fast (preprocess.ts): shrink on load (JPEG DCT scaling, WebP scaled decode)
   * and reduce with libvips' nearest neighbour until the oriented image just covers this
   * box, never enlarging. Absent: the full decode, as the exact rule needs.
   */
  cover?: Size
}

export interface DecodedImage extends RgbImage {
  /** sha256 of the original bytes: the image's identity for dedup and caching. */
  id: string
  format: ImageFormat
  bytes: number
}

// libvips threads its own work; one decode already uses the cores it is given.
sharp.concurrency(1)

export function imageId(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex')
}

/**
 * Decodes untrusted bytes into full-resolution 8-bit sRGB pixels.
 *
 * Choices (documented in docs/models.md): the first frame/page of animations and
 * multi-page files; EXIF orientation applied, so the model sees what a viewer shows;
 * alpha dropped without compositing, as PIL's convert('RGB') did for the original
 * training data; greyscale and palette expanded to RGB; CMYK converted through its
 * ICC profile; 16-bit reduced to 8-bit. No shrink-on-load unless `limits.cover` asks
 * for it: JPEG DCT scaling changes pixels, and parity with the original pipeline needs
 * the fully decoded image.
 */
export async function decodeImage(bytes: Buffer, limits: DecodeLimits): Promise<DecodedImage> {
  const format = acceptedFormat(bytes)
  try {
    const decoder = sharp(bytes, {
      limitInputPixels: limits.maxInputPixels,
      // libtiff reports a strip cut short or placed past the end of the file as an error
      // that libvips only warns about at 'truncated', and then reads the gap as black.
      failOn: format === 'tiff' ? 'error' : 'truncated',
      pages: 1,
      page: 0,
      sequentialRead: true,
    }).autoOrient()
    // sharp picks the largest shrink-on-load factor the box allows (it skips a factor
    // equal to the whole shrink, for libjpeg's rounding) and reduces the rest with the kernel.
    const cover = limits.cover
    if (cover) decoder.resize({ width: cover.width, height: cover.height, fit: 'outside', kernel: 'nearest', withoutEnlargement: true, fastShrinkOnLoad: true })
    const { data, info } = await decoder
      .toColourspace('srgb')
      .removeAlpha()
      .raw({ depth: 'uchar' })
      .toBuffer({ resolveWithObject: true })
    if (info.channels !== 3) throw new NimaError('NIMA_UNDECODABLE_IMAGE', `decoded to ${info.channels} channels, expected 3`)
    return {
      id: imageId(bytes),
      format,
      bytes: bytes.length,
      data,
      width: info.width,
      height: info.height,
    }
  } catch (err) {
    throw toDecodeError(err, format)
  }
}

/** The sniffed format of `bytes` if the service decodes it; a 400 or 415 otherwise. */
export function acceptedFormat(bytes: Uint8Array): ImageFormat {
  if (bytes.length === 0) throw new NimaError('NIMA_MISSING_IMAGE', 'The image is empty (0 bytes)')
  const format = sniffFormat(bytes)
  if (!SUPPORTED_FORMATS.includes(format)) {
    const what = format === 'unknown' ? 'not a recognised image format' : `${format.toUpperCase()} images are not accepted`
    throw new NimaError('NIMA_UNSUPPORTED_MEDIA_TYPE', `${what}; send one of: ${SUPPORTED_FORMATS.join(', ')}`)
  }
  return format
}

/**
 * A decoder failure as a client error. libvips and libjpeg messages name internal
 * buffers, seek offsets and library limits: clients get a fixed message per kind of
 * failure, the original stays in `cause` for the log.
 */
export function toDecodeError(err: unknown, format: ImageFormat): NimaError {
  if (err instanceof NimaError) return err
  const message = err instanceof Error ? err.message : String(err)
  const name = format.toUpperCase()
  if (/pixel limit/i.test(message)) {
    return new NimaError('NIMA_IMAGE_TOO_LARGE', 'The image has more pixels than MAX_INPUT_PIXELS allows', { cause: err })
  }
  if (/maximum supported image dimension|image too large|exceeds.*(width|height|dimension)/i.test(message)) {
    return new NimaError('NIMA_IMAGE_TOO_LARGE', `The ${name} image is wider or taller than the decoder supports`, { cause: err })
  }
  if (/truncat|premature end|read error|seek|unexpected end|end of (file|stream|data)|not enough (data|image data)/i.test(message)) {
    return new NimaError('NIMA_UNDECODABLE_IMAGE', `The ${name} image is truncated: its data ends before the image does`, { cause: err })
  }
  return new NimaError('NIMA_UNDECODABLE_IMAGE', `The ${name} image is corrupt or not a valid ${name} file`, { cause: err })
}
