/**
 * Which preprocessing made a model's pixels, and what the fast one decodes to.
 *
 * - 'exact' (the default): the Keras rule proven pixel for pixel (docs/models.md): the full
 *   decode, then PIL's nearest neighbour straight to the model input. Scores comparable
 *   with the published models and across a catalogue.
 * - 'fast': the decoder's own reduction first (libjpeg's DCT scaling for JPEG, libwebp's
 *   scaled decode: sharp's shrink-on-load), then libvips' nearest neighbour to the smallest
 *   size that still covers twice the model input in both axes, then the same nearest rule.
 *   A 12 MP JPEG is decoded at 1/4 of its size. Where the decoder cannot reduce on load (a
 *   photo under about twice the box, PNG and the other formats) fast decodes in full and is
 *   exact, pixel for pixel: a reduction after a full decode saves no decoding and would only
 *   move the pixels. Where it does reduce, the pixels differ from exact, so do the scores:
 *   `nima-serve models check-preprocess` measures by how much.
 */
export type Preprocess = 'exact' | 'fast'

export const PREPROCESS_MODES: readonly Preprocess[] = ['exact', 'fast']

/** How much larger than the model input a fast decode stays, in each axis. */
export const FAST_COVER_FACTOR = 2

/**
 * The box a fast decode must cover (`fit: 'outside'`: both sides at least these): twice the
 * largest model input in each axis, and the display copy's longest side where one is
 * asked for. Undefined where nothing is sampled (a decode for the summary alone).
 */
export function fastCover(sizes: readonly (readonly [number, number])[], preview?: number): Size | undefined {
  if (sizes.length === 0 && preview === undefined) return undefined
  const width = Math.max(preview ?? 0, ...sizes.map(([w]) => FAST_COVER_FACTOR * w))
  const height = Math.max(preview ?? 0, ...sizes.map(([, h]) => FAST_COVER_FACTOR * h))
  return { width, height }
}

export interface Size {
  width: number
  height: number
}

/**
 * The factor by which libjpeg reduces a `width`×`height` JPEG on load (DCT scaling) so that
 * it still covers `cover` (`fit: 'outside'`): sharp 0.35's rule (src/pipeline.cc), the
 * largest of 8, 4, 2 within the shrink, halved where the shrink's integer part equals it
 * (libjpeg's rounding would leave the image a pixel short). 1: no reduction on load.
 * `width`×`height` as stored, `cover` as the decode is asked for it: sharp swaps the box for
 * a photo its EXIF turns by 90°.
 */
export function jpegShrinkOnLoad(width: number, height: number, cover: Size): 1 | 2 | 4 | 8 {
  const shrink = Math.max(1, Math.min(width / cover.width, height / cover.height))
  const factor = shrink >= 8 ? 8 : shrink >= 4 ? 4 : shrink >= 2 ? 2 : 1
  return factor > 1 && Math.trunc(shrink) === factor ? ((factor / 2) as 2 | 4) : factor
}

/**
 * The pixels a fast decode of a `width`×`height` image (as stored) makes at most, before any
 * orientation is known: a JPEG's DCT-scaled size for the smaller factor of the two ways it
 * may be turned; every other format in full (their cost estimate assumes no reduction).
 */
export function fastDecodedSize(format: string, width: number, height: number, cover: Size): Size {
  if (format !== 'jpeg') return { width, height }
  const turned = { width: cover.height, height: cover.width }
  const factor = Math.min(jpegShrinkOnLoad(width, height, cover), jpegShrinkOnLoad(width, height, turned))
  return { width: Math.ceil(width / factor), height: Math.ceil(height / factor) }
}
