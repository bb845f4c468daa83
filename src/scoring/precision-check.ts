import { readdir, readFile } from 'node:fs/promises'
import { extname, join } from 'node:path'
import { decodeImage } from '../imaging/decode.js'
import { normalizationTable, tensorSize, writeTensor, type TensorSpec } from '../imaging/tensor.js'
import { openSession, type ModelSession } from '../inference/onnx-backend.js'
import { meanOf } from './distribution.js'
import type { ModelManifest } from '../models/manifest.js'

/** How far a converted model's scores are from its original's on real photos. */
export interface PrecisionCheck {
  images: number
  /** Photos that could not be decoded (not counted in the figures), with why. */
  skipped: { photo: string; reason: string }[]
  maxAbsDeltaMean: number
  meanAbsDeltaMean: number
  /** Largest difference of one bin's probability. */
  maxAbsDeltaP: number
  /** The photo with the largest |Δmean|. */
  worst: string
  provider: string
}

const IMAGE_EXTENSIONS = new Set(['.jpg', '.jpeg', '.png', '.webp', '.tif', '.tiff', '.avif', '.gif'])

/** Image files in a folder and its subfolders, sorted by path. */
export async function imageFiles(dir: string): Promise<string[]> {
  const names = await readdir(dir, { recursive: true })
  return names.filter((n) => IMAGE_EXTENSIONS.has(extname(n).toLowerCase())).sort().map((n) => join(dir, n))
}

/**
 * Scores every photo with both models through the service's own decode and tensor code and
 * compares the score means. Runs on the CPU provider unless told otherwise, one image per
 * run, so the figure is about the model file and not about batching.
 */
export async function comparePrecision(
  manifest: ModelManifest,
  base: string | Uint8Array,
  variant: string | Uint8Array,
  photos: readonly string[],
  providers: readonly ('cpu' | 'cuda' | 'webgpu')[] = ['cpu'],
): Promise<PrecisionCheck> {
  if (photos.length === 0) throw new RangeError('no photos to compare on')
  const spec: TensorSpec = { width: manifest.input.width, height: manifest.input.height, lut: normalizationTable(manifest.input.normalization.scale, manifest.input.normalization.offset) }
  const options = { providers, intraOpThreads: 0, interOpThreads: 1 }
  const sessions: ModelSession[] = []
  try {
    const baseSession = await openSession(base, manifest.input.name, options)
    sessions.push(baseSession)
    const variantSession = await openSession(variant, manifest.input.name, options)
    sessions.push(variantSession)
    const values = manifest.output.scores.values
    const scoresName = manifest.output.scores.name
    const input = new Float32Array(tensorSize(spec))
    const shape = [1, spec.height, spec.width, 3]
    let maxAbsDeltaMean = 0
    let sumAbsDeltaMean = 0
    let maxAbsDeltaP = 0
    let worst = photos[0]!
    const skipped: PrecisionCheck['skipped'] = []
    for (const photo of photos) {
      let image
      try {
        image = await decodeImage(await readFile(photo), { maxInputPixels: 100_000_000 })
      } catch (err) {
        skipped.push({ photo, reason: err instanceof Error ? err.message : String(err) })
        continue
      }
      writeTensor(image, spec, input)
      const p = (await baseSession.run(input, shape, [scoresName]))[scoresName]!
      const q = (await variantSession.run(input, shape, [scoresName]))[scoresName]!
      const delta = Math.abs(meanOf(p, values) - meanOf(q, values))
      sumAbsDeltaMean += delta
      if (delta > maxAbsDeltaMean) {
        maxAbsDeltaMean = delta
        worst = photo
      }
      for (let i = 0; i < p.length; i++) maxAbsDeltaP = Math.max(maxAbsDeltaP, Math.abs(p[i]! - q[i]!))
    }
    const images = photos.length - skipped.length
    if (images === 0) throw new RangeError(`none of the ${photos.length} photos could be decoded`)
    return { images, skipped, maxAbsDeltaMean, meanAbsDeltaMean: sumAbsDeltaMean / images, maxAbsDeltaP, worst, provider: variantSession.provider }
  } finally {
    await Promise.all(sessions.map((s) => s.dispose()))
  }
}
