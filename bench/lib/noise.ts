/**
 * How noisy a measurement was: CPU the whole machine spent (from /proc/stat) against CPU
 * our own processes spent, over the same window. "foreignCores" is what other tenants
 * (other agents' test suites) took from our 2 cores while we measured.
 */
import { readFileSync } from 'node:fs'

const CLK_TCK = 100

export interface NoiseMark {
  at: number
  busyJiffies: number
  ours: number
}

export interface Noise {
  /** Cores busy on the whole machine during the window. */
  machineCores: number
  /** Cores used by processes other than ours during the window (≥ 0). */
  foreignCores: number
  /** /proc/pressure/cpu "some avg10" at the end (% of time something waited for a CPU). */
  cpuPressure10s: number
}

function busyJiffies(): number {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0]!
    const f = line.trim().split(/\s+/).slice(1).map(Number)
    // user nice system idle iowait irq softirq steal
    return f[0]! + f[1]! + f[2]! + f[5]! + f[6]! + f[7]!
  } catch {
    return Number.NaN
  }
}

function pressure(): number {
  try {
    const m = /some avg10=([\d.]+)/.exec(readFileSync('/proc/pressure/cpu', 'utf8'))
    return m ? Number(m[1]) : Number.NaN
  } catch {
    return Number.NaN
  }
}

/** `oursCpuSeconds`: CPU seconds used so far by every process of ours that matters. */
export function markNoise(oursCpuSeconds: number): NoiseMark {
  return { at: performance.now(), busyJiffies: busyJiffies(), ours: oursCpuSeconds }
}

export function noiseSince(mark: NoiseMark, oursCpuSecondsNow: number): Noise {
  return noiseBetween(mark, markNoise(oursCpuSecondsNow), 0)
}

/** Noise between two marks; `oursExtra`: CPU seconds of ours not in the marks (read separately over the same window). */
export function noiseBetween(from: NoiseMark, to: NoiseMark, oursExtra: number): Noise {
  const wall = (to.at - from.at) / 1000
  const machine = (to.busyJiffies - from.busyJiffies) / CLK_TCK / wall
  const ours = (to.ours - from.ours + oursExtra) / wall
  return {
    machineCores: Math.round(machine * 100) / 100,
    foreignCores: Math.round(Math.max(0, machine - ours) * 100) / 100,
    cpuPressure10s: pressure(),
  }
}

/** This process's CPU seconds (all its threads: JS, libuv pool, ORT pools). */
export function selfCpuSeconds(): number {
  const u = process.cpuUsage()
  return (u.user + u.system) / 1e6
}

/**
 * Waits (up to maxMs) for a window of `windowMs` in which the machine's busy cores,
 * ours included, stay under `maxBusyCores`. Returns what the last window measured.
 */
export async function waitQuiet(maxMs: number, maxBusyCores = 0.3, windowMs = 5000): Promise<{ waitedMs: number; busyCores: number; quiet: boolean }> {
  const started = performance.now()
  for (;;) {
    const j0 = busyJiffies()
    const t0 = performance.now()
    await new Promise((r) => setTimeout(r, windowMs))
    const busy = (busyJiffies() - j0) / CLK_TCK / ((performance.now() - t0) / 1000)
    const waitedMs = performance.now() - started
    if (busy < maxBusyCores) return { waitedMs, busyCores: Math.round(busy * 100) / 100, quiet: true }
    if (waitedMs >= maxMs) return { waitedMs, busyCores: Math.round(busy * 100) / 100, quiet: false }
  }
}
