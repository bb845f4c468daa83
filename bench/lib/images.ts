import { readFileSync, readdirSync, existsSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'

export interface SampleImage {
  /** Path relative to the images folder, for reports. */
  name: string
  bytes: Buffer
}

/**
 * The sample JPEGs under the shared images folder (read in place, never copied into the
 * repo), the deliberately broken one excluded. Sorted so every run sends the same order.
 */
export function loadSampleJpegs(imagesDir: string): SampleImage[] {
  if (!existsSync(imagesDir)) throw new Error(`sample images folder ${imagesDir} does not exist (pass --images DIR)`)
  const out: SampleImage[] = []
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name)
      if (statSync(path).isDirectory()) walk(path)
      else if (/\.jpe?g$/i.test(name) && !/broken/i.test(name)) out.push({ name: relative(imagesDir, path), bytes: readFileSync(path) })
    }
  }
  walk(imagesDir)
  if (out.length === 0) throw new Error(`no JPEG files under ${imagesDir}`)
  return out
}

export function describeImages(images: readonly SampleImage[]): { count: number; totalBytes: number; meanBytes: number } {
  const totalBytes = images.reduce((s, i) => s + i.bytes.length, 0)
  return { count: images.length, totalBytes, meanBytes: Math.round(totalBytes / images.length) }
}
