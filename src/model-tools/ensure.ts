import { stat } from 'node:fs/promises'
import { scanModels } from '../models/catalog.js'
import { manifestPrecision, type ModelManifest } from '../models/manifest.js'
import { TASKS, type Task } from './sources.js'
import { DEFAULT_SYNTHETIC_SEEDS } from './synthetic-seeds.js'

export interface EnsureOutcome {
  task: Task
  /**
   * present: a model for the task was already installed; created: a synthetic one was
   * made; regenerated: the installed synthetic model predated the feature-map output
   * (/explain) and was rebuilt from its seed (same weights, same scores, a new file).
   */
  action: 'present' | 'created' | 'regenerated'
  manifest: ModelManifest
  modelPath: string
}

export interface EnsureOptions {
  seeds?: Readonly<Record<Task, number>>
}

async function fileExists(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile()
  } catch {
    return false
  }
}

/**
 * Makes sure every task has a model, generating the synthetic one where none is
 * installed. Runs on every `npm install` (prepare), so when models are present it only
 * reads manifests and checks that their ONNX file exists; it never hashes or rebuilds.
 */
export async function ensureModels(dir: string, options: EnsureOptions = {}): Promise<EnsureOutcome[]> {
  const seeds = options.seeds ?? DEFAULT_SYNTHETIC_SEEDS
  const { entries } = await scanModels(dir)
  const outcomes: EnsureOutcome[] = []
  for (const task of TASKS) {
    let found: EnsureOutcome | undefined
    // Real weights first, so the report names what the service will actually prefer;
    // float16 variants are derived from a float32 model and cannot stand in for one.
    const candidates = entries.filter((e) => e.manifest.task === task && manifestPrecision(e.manifest) === 'float32').sort((a, b) => Number(a.manifest.synthetic) - Number(b.manifest.synthetic))
    let outdatedSeed: number | undefined
    for (const entry of candidates) {
      if (await fileExists(entry.modelPath)) {
        const m = entry.manifest
        // A synthetic model costs nothing to rebuild and its seed gives the same weights, so
        // one made before the feature-map output is replaced rather than left without /explain.
        // Real models are never rewritten: `models pull` or `models import` does that.
        if (m.synthetic && m.provenance.kind === 'synthetic' && m.provenance.seed !== undefined && m.output.featureMap === undefined) {
          outdatedSeed = m.provenance.seed
          break
        }
        found = { task, action: 'present', manifest: m, modelPath: entry.modelPath }
        break
      }
    }
    if (found === undefined) {
      // Loaded only when needed: the generator and protobuf cost more than the whole check.
      const { installSynthetic } = await import('./synthesize.js')
      const installed = await installSynthetic(dir, task, outdatedSeed ?? seeds[task])
      found = { task, action: outdatedSeed === undefined ? 'created' : 'regenerated', manifest: installed.manifest, modelPath: installed.modelPath }
    }
    outcomes.push(found)
  }
  return outcomes
}
