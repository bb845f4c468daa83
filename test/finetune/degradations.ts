/**
 * A labelled task the base model cannot know: every clean sample photo, shrunk to the
 * model's 224x224, plus controlled degradations of it (Gaussian blur, JPEG compression,
 * Gaussian noise at three strengths), each rated by how strong the degradation is
 * (clean 9, mild 7, medium 5, strong 3). The group of a variant is its source photo, so a
 * split by group never puts two versions of one photo on both sides.
 */
import { basename, extname } from 'node:path'
import sharp from 'sharp'
import { mulberry32 } from '../../src/util/prng.js'
import { imageId } from '../../src/imaging/decode.js'
import type { LabelStore } from '../../src/labels/store.js'
import { samplePhotos } from '../helpers/paths.js'

export interface Variant {
  id: string
  group: string
  kind: string
  rating: number
  bytes: Buffer
}

/**
 * Photos that are not already degraded (TID2013 dist_*, idealo's technical examples 2, 3,
 * 5, 6), each scene once: idealo's technical4.png is TID2013's reference I03 (also in
 * tid2013/), and two copies of one scene in two groups would leak between the splits.
 */
export function cleanSourcePhotos(): string[] {
  return samplePhotos().filter((p) => !/dist_|techncial[23]|technical[456]/.test(basename(p)))
}

export const LEVELS = [
  { kind: 'blur', strengths: [1, 2, 4] },
  { kind: 'jpeg', strengths: [30, 12, 4] },
  { kind: 'noise', strengths: [8, 20, 45] },
] as const
export const RATINGS = { clean: 9, byLevel: [7, 5, 3] } as const

const SIZE = 224

async function encodeRaw(raw: Buffer, format: 'png' | { jpeg: number }): Promise<Buffer> {
  const img = sharp(raw, { raw: { width: SIZE, height: SIZE, channels: 3 } })
  return format === 'png' ? img.png({ compressionLevel: 1 }).toBuffer() : img.jpeg({ quality: format.jpeg, chromaSubsampling: '4:2:0' }).toBuffer()
}

export async function variantsOf(path: string, seed: number): Promise<Variant[]> {
  const group = basename(path, extname(path))
  const clean = await sharp(path).removeAlpha().toColourspace('srgb').resize(SIZE, SIZE, { fit: 'fill', kernel: 'lanczos3' }).raw().toBuffer()
  const out: Variant[] = []
  const push = (kind: string, rating: number, bytes: Buffer) => out.push({ id: imageId(bytes), group, kind, rating, bytes })
  push('clean', RATINGS.clean, await encodeRaw(clean, 'png'))
  for (const { kind, strengths } of LEVELS) {
    for (const [level, s] of strengths.entries()) {
      const rating = RATINGS.byLevel[level]!
      if (kind === 'blur') {
        const raw = await sharp(clean, { raw: { width: SIZE, height: SIZE, channels: 3 } }).blur(s).raw().toBuffer()
        push(`blur-${s}`, rating, await encodeRaw(raw, 'png'))
      } else if (kind === 'jpeg') {
        push(`jpeg-${s}`, rating, await encodeRaw(clean, { jpeg: s }))
      } else {
        const rng = mulberry32(seed + level * 7919 + group.length)
        const raw = Buffer.from(clean)
        for (let i = 0; i < raw.length; i++) raw[i] = Math.max(0, Math.min(255, Math.round(raw[i]! + s * rng.normal())))
        push(`noise-${s}`, rating, await encodeRaw(raw, 'png'))
      }
    }
  }
  return out
}

export async function buildVariants(sources: readonly string[], seed = 7): Promise<Variant[]> {
  const all: Variant[] = []
  for (const p of sources) all.push(...(await variantsOf(p, seed)))
  return all
}

/** Stores the variants and their ratings (rater "degradation-oracle") in a label database. */
export function storeVariants(store: LabelStore, variants: readonly Variant[]): void {
  for (const v of variants) {
    store.addImage({ id: v.id, data: v.bytes, format: v.kind.startsWith('jpeg') ? 'jpeg' : 'png', width: SIZE, height: SIZE, group: v.group })
    store.rate({ imageId: v.id, rater: 'degradation-oracle', rating: v.rating })
  }
}
