import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import t from 'tap'
import { findExecutable, missingTool, repo } from './helpers.js'

// promtool (from the Debian package prometheus) checks the scrape config, the alert rules
// and runs the rules' unit tests (deploy/prometheus/alerts.test.yml).

const run = promisify(execFile)
const promtool = findExecutable('promtool', ['/usr/bin/promtool'])

if (!promtool) {
  missingTool(t, 'promtool', '.ci/run installs the Debian package prometheus; or put the binary on PATH')
} else {
  const check = (name: string, args: string[]) =>
    t.test(name, async (t) => {
      try {
        const { stdout, stderr } = await run(promtool, args, { cwd: repo('deploy/prometheus') })
        t.match(stdout + stderr, /SUCCESS/, `promtool ${args.join(' ')}`)
      } catch (err) {
        const e = err as { stdout?: string; stderr?: string; message: string }
        t.fail(`promtool ${args.join(' ')} failed`, { output: `${e.stdout ?? ''}${e.stderr ?? e.message}` })
      }
    })

  check('prometheus.yml is a valid config and its rule files load', ['check', 'config', 'prometheus.yml'])
  check('alerts.yml passes promtool check rules (syntax, lint: no duplicate rules)', ['check', 'rules', 'alerts.yml'])
  check('every alert fires on its situation and stays quiet on a healthy one (promtool test rules)', ['test', 'rules', 'alerts.test.yml'])
}
