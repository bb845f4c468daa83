import { readdir, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { sha256Hex } from './integrity.js'
import { manifestPrecision, readManifest, type ModelManifest } from './manifest.js'
import { ModelError } from './model-error.js'

export interface CatalogEntry {
  manifest: ModelManifest
  /** Folder holding manifest.json. */
  dir: string
  /** Absolute or MODELS_DIR-relative path of the ONNX file. */
  modelPath: string
}

export interface CatalogProblem {
  path: string
  error: string
}

/** Every `<dir>/<id>/<version>/manifest.json` under the models folder. */
export async function scanModels(modelsDir: string): Promise<{ entries: CatalogEntry[]; problems: CatalogProblem[] }> {
  const entries: CatalogEntry[] = []
  const problems: CatalogProblem[] = []
  for (const id of await listDirs(modelsDir)) {
    for (const version of await listDirs(join(modelsDir, id))) {
      const dir = join(modelsDir, id, version)
      const path = join(dir, 'manifest.json')
      try {
        const manifest = await readManifest(path)
        if (manifest.id !== id) throw new Error(`manifest id ${manifest.id} does not match its folder ${id}`)
        entries.push({ manifest, dir, modelPath: join(dir, manifest.file) })
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue
        problems.push({ path, error: err instanceof Error ? err.message : String(err) })
      }
    }
  }
  return { entries, problems }
}

async function listDirs(dir: string): Promise<string[]> {
  try {
    const items = await readdir(dir, { withFileTypes: true })
    return items.filter((d) => d.isDirectory()).map((d) => d.name).sort()
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
    throw err
  }
}

/**
 * Which float32 version serves a model id: real weights beat synthetic ones, then the
 * newest. Synthetic models stay only as the fallback that keeps a fresh checkout runnable.
 * float16 variants never win here; they are looked up from their base (float16VariantOf).
 */
export function selectModel(entries: readonly CatalogEntry[], id: string): CatalogEntry | undefined {
  return entries
    .filter((e) => e.manifest.id === id && manifestPrecision(e.manifest) === 'float32')
    .sort((a, b) => {
      if (a.manifest.synthetic !== b.manifest.synthetic) return a.manifest.synthetic ? 1 : -1
      return b.manifest.provenance.createdAt.localeCompare(a.manifest.provenance.createdAt)
    })[0]
}

/** `id/version`, the name a derived model records as provenance.baseModel. */
export function modelRef(manifest: ModelManifest): string {
  return `${manifest.id}/${manifest.version}`
}

/**
 * The float16 variant made from exactly this float32 model (same id/version and same file
 * hash), newest first. A variant of an older or replaced base never matches, so pulling
 * the real weights cannot leave a synthetic float16 model serving.
 */
export function float16VariantOf(entries: readonly CatalogEntry[], base: CatalogEntry): CatalogEntry | undefined {
  return entries
    .filter(
      (e) =>
        manifestPrecision(e.manifest) === 'float16' &&
        e.manifest.id === base.manifest.id &&
        e.manifest.provenance.baseModel === modelRef(base.manifest) &&
        e.manifest.provenance.sourceSha256 === base.manifest.sha256,
    )
    .sort((a, b) => b.manifest.provenance.createdAt.localeCompare(a.manifest.provenance.createdAt))[0]
}

/** The ONNX bytes of a catalog entry, refused if they no longer match the manifest's hash. */
export async function readVerifiedModel(entry: CatalogEntry): Promise<Uint8Array> {
  let bytes: Uint8Array
  try {
    bytes = await readFile(entry.modelPath)
  } catch (cause) {
    throw new ModelError('MODEL_FILE_UNREADABLE', `cannot read ${entry.modelPath}: ${(cause as NodeJS.ErrnoException).code ?? String(cause)}`, { cause })
  }
  const actual = sha256Hex(bytes)
  if (actual !== entry.manifest.sha256) {
    throw new ModelError('MODEL_INTEGRITY_FAILED', `${entry.modelPath} has sha256 ${actual}, its manifest says ${entry.manifest.sha256}`)
  }
  return bytes
}
