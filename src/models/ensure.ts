import { stat } from 'node:fs/promises'
import { scanModels } from './catalog.js'
import { manifestPrecision, type ModelManifest } from './manifest.js'
import { TASKS, type Task } from './sources.js'
import { DEFAULT_SYNTHETIC_SEEDS } from './synthetic-seeds.js'

export interface EnsureOutcome {
  task: Task
  /** present: a model for the task was already installed; created: a synthetic one was made. */
  action: 'present' | 'created'
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
    for (const entry of candidates) {
      if (await fileExists(entry.modelPath)) {
        found = { task, action: 'present', manifest: entry.manifest, modelPath: entry.modelPath }
        break
      }
    }
    if (found === undefined) {
      // Loaded only when needed: the generator and protobuf cost more than the whole check.
      const { installSynthetic } = await import('./synthesize.js')
      const installed = await installSynthetic(dir, task, seeds[task])
      found = { task, action: 'created', manifest: installed.manifest, modelPath: installed.modelPath }
    }
    outcomes.push(found)
  }
  return outcomes
}
