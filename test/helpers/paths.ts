import { existsSync, readdirSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'

export const projectRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..')
export const sharedImages = resolve(projectRoot, '../shared/images')
export const sharedReference = resolve(projectRoot, '../shared/reference')

/** Every decodable sample photo under ../shared/images (the deliberately broken one excluded). */
export function samplePhotos(): string[] {
  if (!existsSync(sharedImages)) return []
  const out: string[] = []
  for (const dir of readdirSync(sharedImages, { withFileTypes: true })) {
    if (!dir.isDirectory()) continue
    for (const f of readdirSync(join(sharedImages, dir.name)).sort()) {
      if (/\.(jpe?g|png)$/i.test(f) && f !== 'truncated-broken.jpg') out.push(join(sharedImages, dir.name, f))
    }
  }
  return out
}
