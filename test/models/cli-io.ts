/** A CliIo that records what a command printed, for tests. */
import type { CliIo } from '../../src/cli/io.js'

export interface RecordedIo extends CliIo {
  lines: string[]
  errors: string[]
  readonly stdout: string
  readonly stderr: string
}

export function recordIo(env: NodeJS.ProcessEnv = {}): RecordedIo {
  const lines: string[] = []
  const errors: string[] = []
  return {
    lines,
    errors,
    out: (line) => lines.push(line),
    err: (line) => errors.push(line),
    env,
    get stdout() {
      return lines.join('\n')
    },
    get stderr() {
      return errors.join('\n')
    },
  }
}
