import { spawn } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import type { LoadResult, LoadSpec } from '../load-worker.js'
import { LOAD_EVENTS } from './load-events.js'
import { projectRoot } from './server.js'

export type { LoadResult, LoadSpec }

const workerPath = fileURLToPath(new URL('../load-worker.ts', import.meta.url))

/** One load level, and what `sample` read when its measured window opened and closed. */
export interface SampledLoad<S> {
  result: LoadResult
  before: S
  after: S
  /** The measured window, seconds (this process's clock). */
  wallSec: number
}

/**
 * Runs one autocannon level in a fresh child process. `sample` is called when the measured
 * window opens (after the child started and warmed up) and when it closes, so CPU and
 * noise are read over the very seconds images/s counts: read around the whole child, they
 * took in its start-up (tsx compiling the worker, ~1 s with the server idle), which made
 * the server look 0.1–0.2 of a core idle and charged the start-up to other processes.
 */
export function runLoadSampled<S>(spec: LoadSpec, sample: () => S): Promise<SampledLoad<S>> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', workerPath, JSON.stringify(spec)], {
      cwd: projectRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    let scanned = 0
    let before: { value: S; at: number } | undefined
    let after: { value: S; at: number } | undefined
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d
      for (let nl = stdout.indexOf('\n', scanned); nl >= 0; nl = stdout.indexOf('\n', scanned)) {
        const line = stdout.slice(scanned, nl)
        scanned = nl + 1
        if (line === LOAD_EVENTS.measuring) before = { value: sample(), at: performance.now() }
        else if (line === LOAD_EVENTS.measured) after = { value: sample(), at: performance.now() }
      }
    })
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
    child.on('error', reject)
    child.on('exit', (code) => {
      const line = stdout.trim().split('\n').pop() ?? ''
      if (code !== 0 || !line.startsWith('{') || !before || !after) {
        reject(new Error(`load worker failed (exit ${code}): ${stderr.trim() || stdout.trim()}`))
        return
      }
      resolve({ result: JSON.parse(line) as LoadResult, before: before.value, after: after.value, wallSec: (after.at - before.at) / 1000 })
    })
  })
}
