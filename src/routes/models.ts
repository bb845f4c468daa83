import type { FastifyInstance } from 'fastify'
import { manifestPrecision } from '../models/manifest.js'
import { ErrorResponse, ModelsResponse } from './schemas.js'
import type { RouteContext } from './context.js'

/** GET /models: what is loaded, where it came from, and which provider runs it. */
export default async function modelsRoute(app: FastifyInstance, { state, config, threads, models }: RouteContext) {
  app.get('/models', { schema: { summary: 'Loaded models with manifests and execution providers', response: { 200: ModelsResponse, 503: ErrorResponse } } }, async () => {
    const scorer = state.requireScorer()
    const defaults = new Set(config.models.slice(0, 2))
    return {
      models: [...scorer.models.values()].map((m) => {
        const c = scorer.calibration?.model(m.info.id)
        return {
          ...m.info,
          default: defaults.has(m.info.id),
          fallbacks: [...m.fallbacks],
          precision: manifestPrecision(m.manifest),
          sha256: m.manifest.sha256,
          input: m.manifest.input,
          output: m.manifest.output,
          ...(c ? { calibration: { createdAt: scorer.calibration!.file.createdAt, size: c.size, raterMap: c.rater !== undefined, synthetic: c.synthetic } } : {}),
          provenance: m.manifest.provenance,
        }
      }),
      executionProviders: [...config.executionProviders],
      ...(threads ? { threads } : {}),
      ...(models?.last ? { reload: models.last } : {}),
    }
  })
}
