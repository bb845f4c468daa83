/**
 * idealo's prediction-time preprocessing, restated for tests: decode to RGB, resize
 * straight to 224x224 with PIL's nearest rule (output i takes source
 * floor((i + 0.5) * in / out)), then x / 127.5 - 1, NHWC.
 */
import { dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import sharp from 'sharp'

export const projectRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..')
export const imagesDir = resolve(projectRoot, '../shared/images')
export const referenceDir = resolve(projectRoot, '../shared/reference')

const SIZE = 224

/** floor((i + 0.5) * n / size) in integer arithmetic, so no float rounding can move it. */
function nearestIndex(i: number, n: number): number {
  return Math.floor(((2 * i + 1) * n) / (2 * SIZE))
}

export async function loadIdealoInput(path: string): Promise<Float32Array> {
  const { data, info } = await sharp(path).removeAlpha().toColourspace('srgb').raw().toBuffer({ resolveWithObject: true })
  if (info.channels !== 3) throw new Error(`${path}: expected 3 channels after decoding, got ${info.channels}`)
  const out = new Float32Array(SIZE * SIZE * 3)
  for (let y = 0; y < SIZE; y++) {
    const sy = nearestIndex(y, info.height)
    for (let x = 0; x < SIZE; x++) {
      const from = (sy * info.width + nearestIndex(x, info.width)) * 3
      const to = (y * SIZE + x) * 3
      for (let c = 0; c < 3; c++) out[to + c] = data[from + c]! / 127.5 - 1
    }
  }
  return out
}

/** Stacks single images into one NHWC batch. */
export function stackBatch(images: readonly Float32Array[]): Float32Array {
  const batch = new Float32Array(images.length * SIZE * SIZE * 3)
  images.forEach((image, i) => batch.set(image, i * image.length))
  return batch
}
