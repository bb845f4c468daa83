import type { FastifyInstance } from 'fastify'
import { ErrorResponse, HealthResponse, ReadyResponse } from './schemas.js'
import type { RouteContext } from './context.js'

/** Liveness (the process answers) and readiness (models warm, not draining). */
export default async function healthRoutes(app: FastifyInstance, { state }: RouteContext) {
  app.get('/healthz', { config: { public: true }, schema: { summary: 'Liveness probe', response: { 200: HealthResponse } } }, async () => ({ status: 'ok' as const }))
  app.get(
    '/readyz',
    { config: { public: true }, schema: { summary: 'Readiness probe: 503 until models are loaded and warmed up, and again while draining', response: { 200: ReadyResponse, 503: ErrorResponse } } },
    async () => {
      const scorer = state.requireScorer()
      return { status: 'ready' as const, models: [...scorer.models.values()].map((m) => m.info) }
    },
  )
}
