import { createHash } from 'node:crypto'
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { buildOnnxModel } from '../../src/models/onnx-graph.js'
import { syntheticWeights } from '../../src/models/synthetic-weights.js'
import { idealoInputSpec, nimaOutputSpec, type ModelManifest } from '../../src/models/manifest.js'
import { projectRoot } from './paths.js'

/**
 * A models folder with synthetic aesthetic + technical models for tests, built once per
 * checkout under .cache/ (git-ignored). Parallel test workers may race: each writes to a
 * private temp folder and renames it into place, and the loser's rename simply fails.
 */
export function testModelsDir(): string {
  const dir = join(projectRoot, '.cache', 'test-models-v1')
  if (existsSync(join(dir, 'technical'))) return dir
  const tmp = `${dir}.tmp-${process.pid}`
  rmSync(tmp, { recursive: true, force: true })
  for (const [id, seed] of [['aesthetic', 101], ['technical', 202]] as const) {
    const version = `synthetic-s${seed}`
    const folder = join(tmp, id, version)
    mkdirSync(folder, { recursive: true })
    const onnx = buildOnnxModel(syntheticWeights(seed))
    writeFileSync(join(folder, 'model.onnx'), onnx)
    const manifest: ModelManifest = {
      id,
      version,
      task: id,
      architecture: 'mobilenet_v1',
      file: 'model.onnx',
      sha256: createHash('sha256').update(onnx).digest('hex'),
      synthetic: true,
      input: idealoInputSpec(),
      output: nimaOutputSpec(),
      provenance: { kind: 'synthetic', seed, tool: 'test/helpers/models.ts', createdAt: new Date().toISOString() },
    }
    writeFileSync(join(folder, 'manifest.json'), JSON.stringify(manifest, null, 2))
  }
  try {
    renameSync(tmp, dir)
  } catch {
    rmSync(tmp, { recursive: true, force: true })
  }
  return dir
}
