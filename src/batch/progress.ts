import cliProgress from 'cli-progress'

/** What the progress display needs from a running batch. */
export interface ProgressSnapshot {
  /** Lines written this run. */
  done: number
  scored: number
  cached: number
  failed: number
  skipped: number
  /** Input bytes consumed so far (all shards' records included). */
  inputBytes: number
  /** Seconds since processing started. */
  elapsedS: number
}

export interface BatchProgress {
  update(s: ProgressSnapshot): void
  stop(s: ProgressSnapshot): void
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '?'
  const s = Math.round(seconds)
  const h = Math.floor(s / 3600)
  const m = Math.floor((s % 3600) / 60)
  const sec = s % 60
  if (h > 0) return `${h}h${String(m).padStart(2, '0')}m`
  if (m > 0) return `${m}m${String(sec).padStart(2, '0')}s`
  return `${sec}s`
}

/**
 * ETA from the share of the input consumed: the rest of the file at the byte rate seen
 * so far. Lines skipped by resume or outside this shard are read fast, so the estimate
 * starts optimistic on a resumed run and settles as real work dominates.
 */
function eta(s: ProgressSnapshot, startBytes: number, totalBytes: number | undefined): number {
  if (totalBytes === undefined || totalBytes <= 0) return NaN
  const read = s.inputBytes - startBytes
  if (read <= 0 || s.elapsedS <= 0) return NaN
  return ((totalBytes - s.inputBytes) / read) * s.elapsedS
}

function rate(s: ProgressSnapshot): string {
  return s.elapsedS > 0 ? (s.done / s.elapsedS).toFixed(1) : '0.0'
}

function barProgress(stream: NodeJS.WriteStream, totalBytes: number): BatchProgress {
  const bar = new cliProgress.SingleBar(
    {
      stream,
      format: 'batch [{bar}] {percentage}% | {done} done ({cached} cached, {failed} failed, {skipped} skipped) | {rate} img/s | ETA {etaText}',
      hideCursor: true,
      clearOnComplete: false,
      fps: 5,
    },
    cliProgress.Presets.shades_classic,
  )
  let startBytes: number | undefined
  const payload = (s: ProgressSnapshot) => ({ done: s.done, cached: s.cached, failed: s.failed, skipped: s.skipped, rate: rate(s), etaText: formatDuration(eta(s, startBytes ?? 0, totalBytes)) })
  let started = false
  return {
    update(s) {
      if (!started) {
        started = true
        startBytes = s.inputBytes
        bar.start(Math.max(totalBytes, 1), s.inputBytes, payload(s))
        return
      }
      bar.update(Math.min(s.inputBytes, totalBytes), payload(s))
    },
    stop(s) {
      if (!started) bar.start(Math.max(totalBytes, 1), s.inputBytes, payload(s))
      bar.update(Math.min(s.inputBytes, totalBytes), payload(s))
      bar.stop()
    },
  }
}

/** One plain line every `intervalMs`, for logs (Kubernetes, CI) where a bar would be noise. */
function lineProgress(log: (line: string) => void, totalBytes: number | undefined, intervalMs: number): BatchProgress {
  let last: ProgressSnapshot | undefined
  let startBytes: number | undefined
  let printed: ProgressSnapshot | undefined
  const print = (s: ProgressSnapshot) => {
    printed = s
    const pct = totalBytes ? `, ${((100 * s.inputBytes) / totalBytes).toFixed(1)}% of input` : ''
    log(
      `batch: ${s.done} done (${s.scored} scored, ${s.cached} cached, ${s.failed} failed, ${s.skipped} skipped), ` +
        `${rate(s)} img/s${pct}, ETA ${formatDuration(eta(s, startBytes ?? 0, totalBytes))}`,
    )
  }
  const timer = setInterval(() => {
    if (last && last !== printed) print(last)
  }, intervalMs)
  timer.unref()
  return {
    update(s) {
      startBytes ??= s.inputBytes
      last = s
    },
    stop() {
      clearInterval(timer)
    },
  }
}

export interface BatchProgressOptions {
  /** A bar is drawn only when this is a TTY. */
  stream?: NodeJS.WriteStream
  log: (line: string) => void
  /** Input size in bytes, when known (not for stdin). */
  totalBytes?: number
  intervalMs: number
}

export function createBatchProgress(o: BatchProgressOptions): BatchProgress {
  return o.stream?.isTTY === true && o.totalBytes !== undefined ? barProgress(o.stream, o.totalBytes) : lineProgress(o.log, o.totalBytes, o.intervalMs)
}
