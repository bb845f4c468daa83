import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { runCli } from '../../src/cli/run-cli.js'
import { testModelsDir } from './models.js'

/**
 * A calibration of the synthetic test models, made the way an operator makes one: the
 * batch CLI over `photos`, then `calibrate` (in this process). Returns its path and the
 * batch results. The percentiles it gives rank meaningless (synthetic) scores.
 */
export async function makeCalibration(photos: readonly string[], extraArgs: string[] = []): Promise<{ dir: string; calibration: string; results: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'nima-cal-'))
  const list = join(dir, 'photos.txt')
  writeFileSync(list, photos.join('\n') + '\n')
  const results = join(dir, 'results.jsonl')
  const calibration = join(dir, 'calibration.json')
  let log = ''
  const io = { out: () => {}, err: (l: string) => void (log += `${l}\n`), env: { MODELS_DIR: await testModelsDir(), LOG_LEVEL: 'warn' } }
  if ((await runCli(['batch', '--input', list, '--output', results, '--no-cache'], io)) !== 0) throw new Error(`batch failed:\n${log}`)
  if ((await runCli(['calibrate', '--input', results, '--output', calibration, ...extraArgs], io)) !== 0) throw new Error(`calibrate failed:\n${log}`)
  return { dir, calibration, results }
}
