import { execFileSync } from 'node:child_process'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { cpus, loadavg, totalmem } from 'node:os'
import { dirname, join } from 'node:path'
import { projectRoot } from './server.js'

/** A Markdown table with padded columns: readable in a terminal, pasteable into RESULTS.md. */
export function mdTable(headers: readonly string[], rows: readonly (readonly (string | number)[])[]): string {
  const cells = [headers.map(String), ...rows.map((r) => r.map((c) => (typeof c === 'number' && !Number.isFinite(c) ? '–' : String(c))))]
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => (r[i] ?? '').length)))
  const line = (r: readonly string[]) => `| ${r.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`
  return [line(cells[0]!), `| ${widths.map((w) => '-'.repeat(w)).join(' | ')} |`, ...cells.slice(1).map(line)].join('\n')
}

export function section(title: string): void {
  process.stdout.write(`\n## ${title}\n\n`)
}

export function print(text: string): void {
  process.stdout.write(`${text}\n`)
}

export function uptime(): string {
  try {
    return execFileSync('uptime', { encoding: 'utf8' }).trim()
  } catch {
    return `load average: ${loadavg().map((x) => x.toFixed(2)).join(', ')}`
  }
}

function packageVersion(name: string): string {
  try {
    return (JSON.parse(readFileSync(join(projectRoot, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version
  } catch {
    return 'unknown'
  }
}

export interface MachineInfo {
  node: string
  cpus: number
  cpuModel: string
  memoryGiB: number
  onnxruntimeNode: string
  sharp: string
  autocannon: string
  uptimeBefore: string
}

export function machineInfo(): MachineInfo {
  return {
    node: process.version,
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    onnxruntimeNode: packageVersion('onnxruntime-node'),
    sharp: packageVersion('sharp'),
    autocannon: packageVersion('autocannon'),
    uptimeBefore: uptime(),
  }
}

export function writeJson(path: string, value: unknown): void {
  mkdirSync(dirname(path), { recursive: true })
  writeFileSync(path, `${JSON.stringify(value, null, 2)}\n`)
}

export function timestamp(): string {
  return new Date().toISOString().replace(/[:.]/g, '-').replace(/Z$/, '')
}
