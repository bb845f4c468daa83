import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import type { LoadResult, LoadSpec } from '../load-worker.js'
import { projectRoot } from './server.js'

export type { LoadResult, LoadSpec }

const workerPath = fileURLToPath(new URL('../load-worker.ts', import.meta.url))

/** Runs one autocannon level in a fresh child process and returns its result. */
export function runLoad(spec: LoadSpec): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', workerPath, JSON.stringify(spec)], {
      cwd: projectRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
    child.on('error', reject)
    child.on('exit', (code) => {
      const line = stdout.trim().split('\n').pop() ?? ''
      if (code !== 0 || !line.startsWith('{')) reject(new Error(`load worker failed (exit ${code}): ${stderr.trim() || stdout.trim()}`))
      else resolve(JSON.parse(line) as LoadResult)
    })
  })
}
