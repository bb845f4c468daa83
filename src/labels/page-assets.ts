import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'

/**
 * The labelling page: plain HTML, CSS and an ES module under src/labels/page/, no build
 * step. They are read once when the plugin registers. A compiled service (dist/) looks in
 * dist/labels/page/ (the build copies the folder there) and falls back to the sources.
 */
export const PAGE_FILES = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'app.css': 'text/css; charset=utf-8',
} as const

export type PageFile = keyof typeof PAGE_FILES

export interface PageAsset {
  body: Buffer
  type: string
}

const CANDIDATES = [new URL('./page/', import.meta.url), new URL('../../src/labels/page/', import.meta.url)]

export async function loadPageAssets(): Promise<Map<PageFile, PageAsset>> {
  const tried: string[] = []
  for (const base of CANDIDATES) {
    try {
      const out = new Map<PageFile, PageAsset>()
      for (const [name, type] of Object.entries(PAGE_FILES) as [PageFile, string][]) {
        out.set(name, { body: await readFile(new URL(name, base)), type })
      }
      return out
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
      tried.push(fileURLToPath(base))
    }
  }
  throw new Error(`labelling page assets not found (looked in ${tried.join(', ')}); copy src/labels/page/ next to the compiled labels module`)
}
