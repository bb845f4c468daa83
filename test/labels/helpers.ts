import sharp from 'sharp'
import { imageId } from '../../src/imaging/decode.js'
import type { LabelStore, NewImage } from '../../src/labels/store.js'

/** A small distinct PNG per `n` (solid colour), with its sha256. */
export async function tinyPng(n: number, size = 32): Promise<{ bytes: Buffer; id: string }> {
  const bytes = await sharp({
    create: { width: size, height: size, channels: 3, background: { r: (n * 37) % 256, g: (n * 91) % 256, b: (n * 13 + 7) % 256 } },
  })
    .png()
    .toBuffer()
  return { bytes, id: imageId(bytes) }
}

export async function addTiny(store: LabelStore, n: number, extra: Partial<NewImage> = {}): Promise<string> {
  const { bytes, id } = await tinyPng(n)
  store.addImage({ id, data: bytes, format: 'png', width: 32, height: 32, ...extra })
  return id
}
