import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { Metrics } from './metrics.js'
import type { ServiceState } from '../service-state.js'

/**
 * Times every request by route template (never the raw URL: unbounded label values
 * would explode the series count) and serves GET /metrics.
 */
export default fp(
  async function metricsPlugin(
    app: FastifyInstance,
    { metrics, state, queueDepths, uploadReservedBytes }: { metrics: Metrics; state: ServiceState; queueDepths: () => Record<string, number>; uploadReservedBytes: () => number },
  ) {
    app.addHook('onResponse', async (request, reply) => {
      const route = request.routeOptions.url ?? 'unmatched'
      metrics.httpDuration.observe(
        { route, method: request.method, status_code: String(reply.statusCode) },
        reply.elapsedTime / 1000,
      )
    })
    app.get('/metrics', { config: { public: true }, schema: { summary: 'Prometheus metrics (text exposition format)', hide: false } }, async (_request, reply) => {
      for (const [model, depth] of Object.entries(queueDepths())) metrics.queueDepth.set({ model }, depth)
      metrics.ready.set(state.ready ? 1 : 0)
      metrics.inflightRequests.set(state.inflight)
      metrics.uploadReservedBytes.set(uploadReservedBytes())
      return reply.type(metrics.registry.contentType).send(await metrics.registry.metrics())
    })
  },
  { name: 'nima-metrics', fastify: '5.x' },
)
