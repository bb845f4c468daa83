import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { Metrics } from './metrics.js'
import type { ServiceState } from '../service-state.js'
import type { TieredScoreCache } from '../cache/tiered-cache.js'
import { ksStatistic } from '../calibration/ks.js'

/**
 * Times every request by route template (never the raw URL: unbounded label values
 * would explode the series count) and serves GET /metrics. What can be read at any time
 * (readiness, requests and images in flight, queues, decode slots and memory, the decode
 * processes, the models in service, the drift of served scores from the calibration) is
 * read here, at scrape time, from the service state: scoring keeps no metrics of its own.
 */
export default fp(
  async function metricsPlugin(
    app: FastifyInstance,
    { metrics, state, uploadReservedBytes, cache }: { metrics: Metrics; state: ServiceState; uploadReservedBytes: () => number; cache?: TieredScoreCache | undefined },
  ) {
    app.addHook('onResponse', async (request, reply) => {
      const route = request.routeOptions.url ?? 'unmatched'
      metrics.httpDuration.observe(
        { route, method: request.method, status_code: String(reply.statusCode) },
        reply.elapsedTime / 1000,
      )
    })
    // Cumulative counts of the decode pool, turned into counter increments.
    const seen = { timeouts: 0, crashes: 0 }
    const readState = () => {
      metrics.ready.set(state.ready ? 1 : 0)
      metrics.inflightRequests.set(state.inflight)
      metrics.uploadReservedBytes.set(uploadReservedBytes())
      metrics.cacheMemoryBytes.set(cache?.memory?.usedBytes ?? 0)
      metrics.cacheMemoryEntries.set(cache?.memory?.size ?? 0)
      metrics.cacheRedisUp.set(cache?.redis?.status === 'ready' ? 1 : 0)
      const scorer = state.scorer
      if (!scorer) return
      metrics.modelInfo.reset()
      metrics.scoreDrift.reset()
      for (const m of scorer.models.values()) {
        const { id, version, synthetic, provider, task } = m.info
        metrics.modelInfo.set({ model: id, version, synthetic: String(synthetic), provider, task }, 1)
        metrics.queueDepth.set({ model: id }, scorer.queueDepthOf(m))
        metrics.inflightImages.set({ model: id }, m.inFlight)
        // Drift only where there is something to compare: a calibration for this very
        // file, and a full window of scores it served.
        const table = scorer.calibration?.model(id)?.quantiles
        const window = table ? metrics.scoreWindows.full(id, m.manifest.sha256) : undefined
        if (table && window) metrics.scoreDrift.set({ model: id }, ksStatistic(window, table))
      }
      const decodes = scorer.decodes
      const memory = scorer.decodeMemory
      metrics.decodeQueueDepth.set(decodes.waiting + memory.waiting)
      metrics.decodesRunning.set(decodes.running)
      metrics.decodeMemoryReservedBytes.set(memory.usedBytes)
      const processes = scorer.decodeProcesses
      if (processes) {
        metrics.decodeProcessTimeouts.inc(Math.max(0, processes.timeouts - seen.timeouts))
        metrics.decodeProcessCrashes.inc(Math.max(0, processes.crashes - seen.crashes))
        seen.timeouts = processes.timeouts
        seen.crashes = processes.crashes
      }
    }
    app.get('/metrics', { config: { public: true }, schema: { summary: 'Prometheus metrics (text exposition format)', hide: false } }, async (_request, reply) => {
      readState()
      return reply.type(metrics.registry.contentType).send(await metrics.registry.metrics())
    })
  },
  { name: 'nima-metrics', fastify: '5.x' },
)
