/**
 * Which preprocessing made a model's pixels, and what the fast one decodes to.
 *
 * - 'exact' (the default): the Keras rule proven pixel for pixel (docs/models.md): the full
 *   decode, then PIL's nearest neighbour straight to the model input. Scores comparable
 *   with the published models and across a catalogue.
 * - 'fast': the decoder's own reduction first (libjpeg's DCT scaling for JPEG, libwebp's
 *   scaled decode: sharp's shrink-on-load), then libvips' nearest neighbour to the smallest
 *   size that still covers twice the model input in both axes, then the same nearest rule.
 *   A 12 MP JPEG is decoded at 1/4 or 1/8 of its size. The pixels differ from exact, so do
 *   the scores: `nima-serve models check-preprocess` measures by how much.
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
export function fastCover(sizes: readonly (readonly [number, number])[], preview?: number): { width: number; height: number } | undefined {
  if (sizes.length === 0 && preview === undefined) return undefined
  const width = Math.max(preview ?? 0, ...sizes.map(([w]) => FAST_COVER_FACTOR * w))
  const height = Math.max(preview ?? 0, ...sizes.map(([, h]) => FAST_COVER_FACTOR * h))
  return { width, height }
}
