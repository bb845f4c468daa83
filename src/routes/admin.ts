import type { FastifyInstance } from 'fastify'
import { NimaError } from '../errors.js'
import type { RouteContext } from './context.js'
import { ErrorResponse } from './schemas.js'

/**
 * POST /admin/models/reload: rescans MODELS_DIR and swaps in what changed, as SIGHUP does
 * (src/scoring/reload.ts). Registered only when API keys are configured, behind them: an
 * unauthenticated endpoint that makes the service load files would be an open door.
 */
export default async function adminRoutes(app: FastifyInstance, { models }: RouteContext) {
  app.post(
    '/admin/models/reload',
    {
      schema: {
        summary: 'Reload the models from MODELS_DIR without downtime (only with API_KEYS set)',
        description:
          'New versions load and warm while the old ones serve, then swap in at once; requests already running finish on the old models. A load that fails leaves the old models in service and answers 503 NIMA_RELOAD_FAILED with the reason.',
        response: { 200: { $ref: 'ReloadReport#' }, '4xx': ErrorResponse, '5xx': ErrorResponse },
      },
    },
    async () => {
      if (!models) throw new NimaError('NIMA_NOT_READY', 'this service has no model reloader')
      const report = await models.reload('http')
      if (report.outcome === 'failed') throw new NimaError('NIMA_RELOAD_FAILED', `the previous models keep serving: ${report.error ?? 'unknown reason'}`, { headers: { 'retry-after': '5' } })
      return report
    },
  )
}
