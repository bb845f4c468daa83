/** The built service as the images run it (`node dist/main.cjs`), in a child process on 127.0.0.1. */
import { spawn, type ChildProcess } from 'node:child_process'
import { setTimeout as sleep } from 'node:timers/promises'
import { freePort, repo } from '../deploy/helpers.js'

export interface DistService {
  child: ChildProcess
  url: string
  /** What the service wrote to stderr so far. */
  readonly log: string
  /** What it wrote to stdout so far (pino's JSON lines). */
  readonly out: string
}

/**
 * Starts `dist/main.cjs` with exactly `env` (plus PATH, host and a free port) and waits
 * until it is ready; `t.teardown` kills it. Resolves even if it never gets ready: the
 * caller's first request then says so.
 */
export async function startDistService(t: { teardown(fn: () => void): void }, env: Record<string, string>): Promise<DistService> {
  const port = await freePort()
  const child = spawn(process.execPath, [repo('dist/main.cjs')], {
    cwd: repo(),
    env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let log = ''
  let out = ''
  child.stderr?.on('data', (d: Buffer) => (log += d.toString()))
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()))
  t.teardown(() => {
    if (child.exitCode === null) child.kill('SIGKILL')
  })
  const url = `http://127.0.0.1:${port}`
  for (let i = 0; i < 240 && child.exitCode === null && !(await fetch(`${url}/readyz`).then((r) => r.ok, () => false)); i++) await sleep(250)
  return {
    child,
    url,
    get log() {
      return log
    },
    get out() {
      return out
    },
  }
}
