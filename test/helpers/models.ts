import { existsSync, renameSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { ensureModels } from '../../src/model-tools/ensure.js'
import { projectRoot } from './paths.js'

/**
 * A models folder with the default synthetic aesthetic + technical models (the same ones
 * `npm ci` installs), built once per checkout under .cache/ (git-ignored). Parallel test
 * workers may race: each builds in a private folder and renames it into place; a loser's
 * rename fails harmlessly.
 */
export async function testModelsDir(): Promise<string> {
  const dir = join(projectRoot, '.cache', 'test-models-v3')
  if (existsSync(join(dir, 'technical'))) return dir
  const tmp = `${dir}.tmp-${process.pid}`
  rmSync(tmp, { recursive: true, force: true })
  await ensureModels(tmp)
  try {
    renameSync(tmp, dir)
  } catch {
    rmSync(tmp, { recursive: true, force: true })
  }
  return dir
}
