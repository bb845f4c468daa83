import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { readManifest, type ModelManifest } from './manifest.js'

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
 * Which version serves a model id: real weights beat synthetic ones, then the newest.
 * Synthetic models stay only as the fallback that keeps a fresh checkout runnable.
 */
export function selectModel(entries: readonly CatalogEntry[], id: string): CatalogEntry | undefined {
  return entries
    .filter((e) => e.manifest.id === id)
    .sort((a, b) => {
      if (a.manifest.synthetic !== b.manifest.synthetic) return a.manifest.synthetic ? 1 : -1
      return b.manifest.provenance.createdAt.localeCompare(a.manifest.provenance.createdAt)
    })[0]
}
