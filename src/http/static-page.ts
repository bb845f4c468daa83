import { readFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance, FastifyReply } from 'fastify'

/**
 * The service's browser pages (/label, /gallery): plain HTML, CSS and an ES module in a
 * folder under src/, no build step. One mechanism for all of them: the files are read once
 * when the page registers and served from memory with the same security headers. A
 * compiled service (dist/) looks in dist/<folder>/ (the build copies the folders there)
 * and falls back to the sources. Beside each page's own files, the shared ones of
 * src/http/page-kit/ (kit.js: the API call, its one 401 behaviour, page state; icon.svg)
 * are served under the page's path, so a page imports `./kit.js` and needs nothing else
 * registered.
 *
 * The routes are public and hidden from the OpenAPI document: a page holds no data, and
 * its API calls carry the key when one is needed.
 */
export const PAGE_FILES = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'app.css': 'text/css; charset=utf-8',
} as const

export type PageFile = keyof typeof PAGE_FILES

/** The files every page shares, from src/http/page-kit/. */
export const KIT_FILES = {
  'kit.js': 'text/javascript; charset=utf-8',
  'icon.svg': 'image/svg+xml',
} as const

export type KitFile = keyof typeof KIT_FILES

export interface PageAsset {
  body: Buffer
  type: string
}

export interface PageOptions {
  /** URL of the page, e.g. /label; its files are served at /label/app.js and /label/app.css. */
  path: string
  /** Folder relative to src/ (and dist/), e.g. labels/page. */
  folder: string
  /** img-src beyond 'self' and blob:, e.g. https: for a page showing photos from their URLs. */
  imageSources?: readonly string[]
}

/** The page's files, read from dist/<folder>/ or src/<folder>/. */
export async function loadPageAssets(folder: string): Promise<Map<PageFile, PageAsset>>
export async function loadPageAssets<F extends string>(folder: string, files: Readonly<Record<F, string>>): Promise<Map<F, PageAsset>>
export async function loadPageAssets(folder: string, files: Readonly<Record<string, string>> = PAGE_FILES): Promise<Map<string, PageAsset>> {
  const candidates = [new URL(`../${folder}/`, import.meta.url), new URL(`../../src/${folder}/`, import.meta.url)]
  const tried: string[] = []
  for (const base of candidates) {
    try {
      const out = new Map<string, PageAsset>()
      for (const [name, type] of Object.entries(files)) {
        out.set(name, { body: await readFile(new URL(name, base)), type })
      }
      return out
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
      tried.push(fileURLToPath(base))
    }
  }
  throw new Error(`page assets not found (looked in ${tried.join(', ')}); copy src/${folder}/ next to the compiled modules`)
}

/** Registers GET <path>, <path>/app.js, <path>/app.css, <path>/kit.js and <path>/icon.svg. */
export async function registerPage(app: FastifyInstance, options: PageOptions): Promise<void> {
  const assets = new Map<PageFile | KitFile, PageAsset>([...(await loadPageAssets(options.folder)), ...(await loadPageAssets('http/page-kit', KIT_FILES))])
  const images = ["'self'", 'blob:', ...(options.imageSources ?? [])].join(' ')
  const csp = `default-src 'self'; img-src ${images}; style-src 'self'; script-src 'self'; frame-ancestors 'none'`
  const send = (name: PageFile | KitFile) => async (_request: unknown, reply: FastifyReply) => {
    const asset = assets.get(name)!
    return reply
      .type(asset.type)
      .header('cache-control', 'no-cache')
      .header('x-content-type-options', 'nosniff')
      .header('content-security-policy', csp)
      .send(asset.body)
  }
  const route = { config: { public: true }, schema: { hide: true } }
  app.get(options.path, route, send('index.html'))
  app.get(`${options.path}/app.js`, route, send('app.js'))
  app.get(`${options.path}/app.css`, route, send('app.css'))
  app.get(`${options.path}/kit.js`, route, send('kit.js'))
  app.get(`${options.path}/icon.svg`, route, send('icon.svg'))
}
