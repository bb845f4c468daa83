/**
 * The command line as a real process: it starts, reads its configuration through
 * src/config (an empty variable is unset, as in the service) and ends with the exit code
 * of src/errors.ts's table.
 */
import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { projectRoot } from './helpers/paths.js'

const run = promisify(execFile)

async function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => k !== 'MODELS_DIR' && k !== 'MAX_INPUT_PIXELS'))
  try {
    const { stdout, stderr } = await run(process.execPath, ['--import', 'tsx', 'src/cli/main.ts', ...args], { cwd: projectRoot, env: { ...clean, ...env } })
    return { code: 0, stdout, stderr }
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string }
    return { code: e.code, stdout: e.stdout, stderr: e.stderr }
  }
}

t.test('--version prints the package version', async (t) => {
  const { version } = JSON.parse(readFileSync(join(projectRoot, 'package.json'), 'utf8')) as { version: string }
  t.same(await cli(['--version']), { code: 0, stdout: `${version}\n`, stderr: '' })
})

t.test('an unknown command is a usage error: exit 2', async (t) => {
  const r = await cli(['frobnicate'])
  t.equal(r.code, 2)
  t.match(r.stderr, /^nima-serve: unknown command "frobnicate"\nusage: nima-serve <command>/)
})

t.test('an empty MODELS_DIR is unset, as in the service: the default ./models', async (t) => {
  const r = await cli(['models', 'list'], { MODELS_DIR: '' })
  t.equal(r.code, 0, r.stderr)
  t.match(r.stdout, /^id\tversion\tsynthetic\tprecision\tsha256\n(.*\n)*aesthetic\t/, 'lists the models of ./models')
})

t.test('a bad configuration variable is a usage error naming it: exit 2, no stack', async (t) => {
  const r = await cli(['models', 'list'], { MAX_INPUT_PIXELS: 'lots' })
  t.equal(r.code, 2)
  t.match(r.stderr, /^nima-serve: invalid configuration:\n {2}MAX_INPUT_PIXELS: .*\(got "lots"/)
  t.notMatch(r.stderr, /\n\s+at /, 'no stack')
})
