/**
 * Prints a folder with the synthetic aesthetic + technical models and their float16
 * variants (built once under .cache/), so the GPU run measures both precisions.
 */
import { existsSync } from 'node:fs'
import { cp } from 'node:fs/promises'
import { join } from 'node:path'
import { scanModels, selectModel } from '../../src/models/catalog.js'
import { installFloat16Variant } from '../../src/model-tools/float16-variant.js'
import { testModelsDir } from '../../test/helpers/models.js'
import { projectRoot } from '../../test/helpers/paths.js'

const dir = join(projectRoot, '.cache', 'gpu-bench-models-v1')
if (!existsSync(join(dir, 'technical'))) {
  await cp(await testModelsDir(), dir, { recursive: true })
  const { entries } = await scanModels(dir)
  for (const id of ['aesthetic', 'technical']) await installFloat16Variant(dir, selectModel(entries, id)!)
}
process.stdout.write(`${dir}\n`)
