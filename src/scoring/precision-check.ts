import { readdir, readFile } from 'node:fs/promises'
import { extname, join } from 'node:path'
import type { ImageAdmission } from '../imaging/admission.js'
import { meanOf } from './distribution.js'
import type { ModelManifest } from '../models/manifest.js'
import { decodeIntoTensor, ManifestModel } from '../models/model-pipeline.js'

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
 * Scores every photo with both models through the service's own admission, decode and tensor code and
 * compares the score means. Runs on the CPU provider unless told otherwise, one image per
 * run, so the figure is about the model file and not about batching.
 */
export async function comparePrecision(
  manifest: ModelManifest,
  base: string | Uint8Array,
  variant: string | Uint8Array,
  photos: readonly string[],
  admission: ImageAdmission,
  providers: readonly ('cpu' | 'cuda' | 'webgpu')[] = ['cpu'],
): Promise<PrecisionCheck> {
  if (photos.length === 0) throw new RangeError('no photos to compare on')
  const options = { providers, intraOpThreads: 0, interOpThreads: 1 }
  const models: ManifestModel[] = []
  try {
    const baseModel = await ManifestModel.open(base, manifest, options)
    models.push(baseModel)
    const variantModel = await ManifestModel.open(variant, manifest, options)
    models.push(variantModel)
    const values = manifest.output.scores.values
    const input = baseModel.batchBuffer(1)
    let maxAbsDeltaMean = 0
    let sumAbsDeltaMean = 0
    let maxAbsDeltaP = 0
    let worst = photos[0]!
    const skipped: PrecisionCheck['skipped'] = []
    for (const photo of photos) {
      try {
        await decodeIntoTensor(admission, await readFile(photo), baseModel.spec, input)
      } catch (err) {
        skipped.push({ photo, reason: err instanceof Error ? err.message : String(err) })
        continue
      }
      const p = (await baseModel.run(input, 1)).scores
      const q = (await variantModel.run(input, 1)).scores
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
    return { images, skipped, maxAbsDeltaMean, meanAbsDeltaMean: sumAbsDeltaMean / images, maxAbsDeltaP, worst, provider: variantModel.provider }
  } finally {
    await Promise.all(models.map((m) => m.dispose()))
  }
}
