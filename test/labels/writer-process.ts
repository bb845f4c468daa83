import { spawn, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'

const script = fileURLToPath(new URL('./fixtures/rating-writer.ts', import.meta.url))

export interface Writer {
  child: ChildProcess
  /** Lines printed so far. */
  lines: string[]
  /** Resolves with the exit code (or the signal's name). */
  exited: Promise<number | string>
  /** Resolves once a line matches. */
  until(match: (line: string) => boolean, timeoutMs?: number): Promise<string>
}

/** test/labels/fixtures/rating-writer.ts in its own Node process (a real process to kill). */
export function startWriter(db: string, mode: 'write' | 'hold'): Writer {
  const child = spawn(process.execPath, ['--import', 'tsx', script, db, mode], { stdio: ['ignore', 'pipe', 'inherit'] })
  const lines: string[] = []
  const waiters = new Set<() => void>()
  let rest = ''
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    const parts = (rest + chunk).split('\n')
    rest = parts.pop()!
    lines.push(...parts)
    for (const w of waiters) w()
  })
  const exited = new Promise<number | string>((resolve) => child.on('exit', (code, signal) => resolve(code ?? signal ?? -1)))
  exited.then(() => {
    for (const w of waiters) w()
  })
  return {
    child,
    lines,
    exited,
    until(match, timeoutMs = 30_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => done(new Error(`no matching line in ${timeoutMs} ms; got: ${lines.slice(-3).join(' | ')}`)), timeoutMs)
        const check = () => {
          const found = lines.find(match)
          if (found !== undefined) done(undefined, found)
          else if (child.exitCode !== null || child.signalCode !== null) done(new Error(`exited (${child.exitCode ?? child.signalCode}) first; got: ${lines.slice(-3).join(' | ')}`))
        }
        const done = (err?: Error, line?: string) => {
          clearTimeout(timer)
          waiters.delete(check)
          if (err) reject(err)
          else resolve(line!)
        }
        waiters.add(check)
        check()
      })
    },
  }
}
