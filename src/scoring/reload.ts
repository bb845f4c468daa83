import type { FastifyBaseLogger } from 'fastify'
import type { BoundCalibration } from '../calibration/bound-calibration.js'
import type { Config } from '../config/load.js'
import type { ThreadPlan } from '../threads/resolve-threads.js'
import { bindCalibration, readConfiguredCalibration } from './load-calibration.js'
import { loadScorer, selectModels } from './load-scorer.js'
import type { ScoringObserver } from './observer.js'
import type { Scorer } from './scorer.js'

/** What one reload did. */
export interface ReloadReport {
  /** ISO time the reload finished. */
  at: string
  /** What asked for it: 'SIGHUP' or 'http'. */
  trigger: string
  /** reloaded: new models in service; unchanged: MODELS_DIR serves what already runs; failed: the previous models still serve. */
  outcome: 'reloaded' | 'unchanged' | 'failed'
  /** The models whose file changed: id, the version that served and the one that serves now. */
  changed: { id: string; from: string; to: string }[]
  /** Why it failed. */
  error?: string
  /** SCORE_CALIBRATION, re-read with the models (absent when it is not set). */
  calibration?: CalibrationReload
  ms: number
}

/** What a reload did with SCORE_CALIBRATION. */
export interface CalibrationReload {
  /** reloaded: other content now applies; unchanged: the same file's content; failed: the previous calibration (and models) still serve. */
  outcome: 'reloaded' | 'unchanged' | 'failed'
  file: string
  /** The calibration's date (reloaded or unchanged). */
  createdAt?: string
  /** The model ids it gives percentiles for. */
  models?: string[]
}

export interface ModelReloader {
  /** Rescans MODELS_DIR; concurrent calls share the reload in progress. */
  reload(trigger: string): Promise<ReloadReport>
  /** The last reload's report. */
  readonly last: ReloadReport | undefined
}

/** What a reload needs of the service's state (ServiceState): the scorer in service, and the swap. */
export interface ScorerSlot {
  readonly scorer: Scorer | undefined
  swapScorer(next: Scorer): Promise<void>
}

export interface ReloaderDeps {
  config: Config
  log: FastifyBaseLogger
  threads: ThreadPlan
  observer: ScoringObserver
  state: ScorerSlot
  onReport?: (report: ReloadReport) => void
}

/** A model file is the same when its id, version, precision and bytes (sha256) are. */
const fingerprint = (m: { version: string; sha256: string; precision?: string }) => `${m.version}|${m.precision ?? 'float32'}|${m.sha256}`

/**
 * Hot reload of the models: when MODELS_DIR now selects other files than the ones in
 * service (a new version installed by `models import`, `pull` or `finetune`), a whole new
 * scorer is loaded and warmed in the background while the old one serves, then swapped in
 * at once (ServiceState.swapScorer): requests already running finish on the old sessions,
 * which are disposed after the last of them. Readiness never changes. A load that fails
 * leaves the old scorer in service and says why. SCORE_CALIBRATION is read again every
 * time and must fit the models that will serve: a file that cannot be read, or that
 * matches none of them, fails the reload (the previous models and calibration serve on).
 */
export function createModelReloader(deps: ReloaderDeps): ModelReloader {
  let running: Promise<ReloadReport> | undefined
  let last: ReloadReport | undefined

  const run = async (trigger: string): Promise<ReloadReport> => {
    const started = performance.now()
    const file = deps.config.SCORE_CALIBRATION
    let calibration: CalibrationReload | undefined = file === '' ? undefined : { outcome: 'failed', file }
    const report = (outcome: ReloadReport['outcome'], changed: ReloadReport['changed'], error?: string): ReloadReport => ({
      at: new Date().toISOString(),
      trigger,
      outcome,
      changed,
      ...(error !== undefined ? { error } : {}),
      ...(calibration ? { calibration } : {}),
      ms: Math.round(performance.now() - started),
    })
    const current = deps.state.scorer
    if (!current) return report('failed', [], 'models are still loading; nothing to reload yet')
    const applied = (bound: BoundCalibration | undefined): void => {
      if (!bound) return
      calibration = { outcome: bound.sha256 === current.calibration?.sha256 ? 'unchanged' : 'reloaded', file, createdAt: bound.file.createdAt, models: bound.calibrated }
    }
    try {
      const selected = await selectModels(deps.config, deps.log)
      const changes = (next: ReadonlyMap<string, { version: string; sha256: string; precision?: string }>) =>
        [...next].flatMap(([id, m]) => {
          const old = current.models.get(id)?.manifest
          return old && fingerprint(old) === fingerprint(m) ? [] : [{ id, from: old?.version ?? '(none)', to: m.version }]
        })
      if (changes(new Map([...selected].map(([id, e]) => [id, e.manifest]))).length === 0) {
        // The same models: only the calibration may have changed. Bound before it replaces
        // the one in service, so a file that does not fit leaves that one in place.
        const read = await readConfiguredCalibration(deps.config)
        if (read) {
          const bound = bindCalibration(read, current.models.values(), deps.log)
          applied(bound)
          current.useCalibration(bound)
        }
        return report('unchanged', [])
      }
      const next = await loadScorer(deps.config, deps.log, deps.threads, deps.observer)
      applied(next.calibration)
      const changed = changes(new Map([...next.models].map(([id, m]) => [id, m.manifest])))
      deps.state
        .swapScorer(next)
        .then(() => deps.log.info({ trigger }, 'reload: the previous models are released'))
        .catch((err: unknown) => deps.log.error({ err }, 'reload: releasing the previous models failed'))
      return report('reloaded', changed)
    } catch (err) {
      return report('failed', [], err instanceof Error ? err.message : String(err))
    }
  }

  return {
    get last() {
      return last
    },
    reload(trigger) {
      running ??= run(trigger).then((r) => {
        last = r
        running = undefined
        deps.onReport?.(r)
        if (r.outcome === 'failed') deps.log.error({ reload: r }, `reload failed, the previous models keep serving: ${r.error}`)
        else deps.log.info({ reload: r }, r.outcome === 'reloaded' ? `reload: ${r.changed.map((c) => `${c.id} ${c.from} → ${c.to}`).join(', ')}` : 'reload: nothing changed')
        return r
      })
      return running
    },
  }
}
