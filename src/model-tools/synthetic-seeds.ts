import type { Task } from './sources.js'

/** Fixed per task so a fresh checkout always gets the same two synthetic models. */
export const DEFAULT_SYNTHETIC_SEEDS: Readonly<Record<Task, number>> = Object.freeze({ aesthetic: 1007, technical: 1011 })

export function syntheticVersion(seed: number): string {
  return `synthetic-s${seed}`
}
