import cliProgress from 'cli-progress'
import type { ProgressReporter } from '../model-tools/download.js'

const MB = 1024 * 1024

function mb(bytes: number): string {
  return (bytes / MB).toFixed(1)
}

/** A redrawn bar, for terminals. */
function barProgress(stream: NodeJS.WriteStream): ProgressReporter {
  const bar = new cliProgress.SingleBar(
    { stream, format: '{label} [{bar}] {percentage}% | {got}/{size} MB | ETA {eta}s', hideCursor: true, clearOnComplete: false },
    cliProgress.Presets.shades_classic,
  )
  let total = 0
  return {
    start(label, totalBytes) {
      total = totalBytes ?? 0
      bar.start(Math.max(total, 1), 0, { label, got: '0.0', size: totalBytes === undefined ? '?' : mb(totalBytes) })
    },
    update(received) {
      // With no Content-Length the total grows with the data, so the bar shows activity.
      if (total === 0) bar.setTotal(Math.max(received, 1))
      bar.update(received, { got: mb(received) })
    },
    stop() {
      bar.stop()
    },
  }
}

/** Plain lines at start, each quarter and the end, for logs and CI where a bar would be noise. */
function lineProgress(log: (line: string) => void): ProgressReporter {
  let label = ''
  let total: number | undefined
  let received = 0
  let nextQuarter = 1
  return {
    start(name, totalBytes) {
      label = name
      total = totalBytes
      received = 0
      nextQuarter = 1
      log(`${label}: starting download${total === undefined ? '' : ` of ${mb(total)} MB`}`)
    },
    update(bytes) {
      received = bytes
      if (total === undefined) return
      while (nextQuarter < 4 && received >= (total * nextQuarter) / 4) {
        log(`${label}: ${nextQuarter * 25}% (${mb(received)} of ${mb(total)} MB)`)
        nextQuarter++
      }
    },
    stop() {
      log(`${label}: received ${mb(received)} MB`)
    },
  }
}

export function createProgress(stream: NodeJS.WriteStream | undefined, log: (line: string) => void): ProgressReporter {
  return stream?.isTTY === true ? barProgress(stream) : lineProgress(log)
}
