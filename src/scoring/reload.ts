import type { FastifyBaseLogger } from 'fastify'
import type { Config } from '../config/load.js'
import type { ThreadPlan } from '../threads/resolve-threads.js'
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
  ms: number
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
 * leaves the old scorer in service and says why.
 */
export function createModelReloader(deps: ReloaderDeps): ModelReloader {
  let running: Promise<ReloadReport> | undefined
  let last: ReloadReport | undefined

  const run = async (trigger: string): Promise<ReloadReport> => {
    const started = performance.now()
    const report = (outcome: ReloadReport['outcome'], changed: ReloadReport['changed'], error?: string): ReloadReport => ({
      at: new Date().toISOString(),
      trigger,
      outcome,
      changed,
      ...(error !== undefined ? { error } : {}),
      ms: Math.round(performance.now() - started),
    })
    const current = deps.state.scorer
    if (!current) return report('failed', [], 'models are still loading; nothing to reload yet')
    try {
      const selected = await selectModels(deps.config, deps.log)
      const changes = (next: ReadonlyMap<string, { version: string; sha256: string; precision?: string }>) =>
        [...next].flatMap(([id, m]) => {
          const old = current.models.get(id)?.manifest
          return old && fingerprint(old) === fingerprint(m) ? [] : [{ id, from: old?.version ?? '(none)', to: m.version }]
        })
      if (changes(new Map([...selected].map(([id, e]) => [id, e.manifest]))).length === 0) return report('unchanged', [])
      const next = await loadScorer(deps.config, deps.log, deps.threads, deps.observer)
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
