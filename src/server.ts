import type { FastifyInstance } from 'fastify'
import { buildApp } from './app.js'
import { CalibrationError } from './calibration/calibration-file.js'
import type { Config } from './config/load.js'
import { loggerOptions } from './http/logger.js'
import { countAbandoned } from './http/request-lifecycle.js'
import { createMetrics, scoringObserver, type Metrics } from './metrics/metrics.js'
import { loadScorer } from './scoring/load-scorer.js'
import { createModelReloader, type ModelReloader } from './scoring/reload.js'
import type { DropStage } from './scoring/observer.js'
import { ServiceState } from './service-state.js'
import { planThreads } from './threads/plan-threads.js'
import type { ThreadPlan } from './threads/resolve-threads.js'

export interface Server {
  app: FastifyInstance
  state: ServiceState
  metrics: Metrics
  /** Resolves once models are loaded and warm (rejects if they cannot be). */
  ready: Promise<void>
  /** Drains and stops: readiness off, no new connections, in-flight finish within the grace period. */
  shutdown(): Promise<{ drained: boolean }>
  /** Hot reload of the models (SIGHUP, POST /admin/models/reload). */
  models: ModelReloader
}

/**
 * The real service: listens first (so probes can see "not ready" while models load),
 * then loads and warms the models. `threads` comes from the process entry (src/main.cts),
 * which sized libuv's pool with it; started in-process (tests), the pool already runs.
 */
export async function startServer(config: Config, threads: ThreadPlan = planThreads(config, 'started')): Promise<Server> {
  const metrics = createMetrics({ driftWindow: config.SCORE_DRIFT_WINDOW })
  const state = new ServiceState((ready) => metrics.ready.set(ready ? 1 : 0))
  // The reloader needs the app's logger and the app needs the reloader: a forward reference.
  let reloader: ModelReloader | undefined
  const models: ModelReloader = {
    reload: (trigger) => reloader!.reload(trigger),
    get last() {
      return reloader?.last
    },
  }
  const app = await buildApp({ config, state, metrics, logger: loggerOptions(config), threads, models })
  // The scorer is this function's to release: after in-flight requests, when the app closes.
  app.addHook('onClose', async () => {
    await state.scorer?.dispose()
  })
  await app.listen({ host: config.HOST, port: config.PORT })
  app.log.info({ threads }, `CPU budget ${threads.cpu.cores} (${threads.cpu.source}): ${threads.decodeSlots.value} decode slots, ${threads.ortIntraOpThreads.value} ONNX Runtime intra-op threads per session (sessions on ${config.INFERENCE_THREAD === 'worker' ? 'worker threads' : 'the main thread'}), libuv pool ${threads.uvThreadpoolSize.value}`)

  const observer = { ...scoringObserver(metrics), dropped: (stage: DropStage, reason: unknown) => countAbandoned(metrics, stage, reason) }
  reloader = createModelReloader({ config, log: app.log, threads, observer, state, onReport: (r) => metrics.modelReloads.inc({ outcome: r.outcome }) })
  const ready = loadScorer(config, app.log, threads, observer).then((scorer) => {
    state.setScorer(scorer)
    app.log.info({ models: [...scorer.models.keys()] }, 'ready')
  })
  ready.catch((err: unknown) =>
    app.log.fatal({ err }, err instanceof CalibrationError ? `SCORE_CALIBRATION refused, not starting: ${err.message}` : 'models could not be loaded'),
  )

  let stopping: Promise<{ drained: boolean }> | undefined
  const shutdown = () =>
    (stopping ??= (async () => {
      state.startDraining()
      app.log.info({ inflight: state.inflight, graceMs: config.SHUTDOWN_GRACE_MS }, 'draining')
      let timer: NodeJS.Timeout | undefined
      const grace = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), config.SHUTDOWN_GRACE_MS)))
      const closed = app.close().then(() => true as const)
      app.server.closeIdleConnections()
      const drained = await Promise.race([closed, grace])
      clearTimeout(timer)
      return { drained }
    })())

  return { app, state, metrics, ready, shutdown, models }
}
