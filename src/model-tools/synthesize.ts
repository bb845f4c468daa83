import { installModel, type InstalledModel } from './install.js'
import { buildOnnxModel } from '../models/onnx-graph.js'
import type { Task } from './sources.js'
import { syntheticVersion } from './synthetic-seeds.js'
import { assertSeed, syntheticWeights } from './synthetic-weights.js'

const NOTES =
  'Seeded random MobileNet v1 weights (He-normal kernels, BatchNorm statistics consistent with them). ' +
  'Scores carry no meaning; run `npx nima-serve models pull` for the real idealo weights.'

/** Generates, converts and installs the synthetic model of one task. */
export async function installSynthetic(dir: string, task: Task, seed: number): Promise<InstalledModel> {
  assertSeed(seed)
  const onnx = buildOnnxModel(syntheticWeights(seed), {
    docString: `nima-serve SYNTHETIC ${task} model, seed ${seed}: scores carry no meaning`,
    metadata: { synthetic: 'true', seed: String(seed), task },
  })
  return installModel({
    dir,
    id: task,
    version: syntheticVersion(seed),
    task,
    onnx,
    synthetic: true,
    provenance: { kind: 'synthetic', seed, notes: NOTES },
  })
}
