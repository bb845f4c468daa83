import { randomUUID } from 'node:crypto'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import swagger from '@fastify/swagger'
import rateLimit from '@fastify/rate-limit'
import type { Config } from './config/load.js'
import apiKeys from './http/auth.js'
import errorHandler from './http/error-handler.js'
import { NimaError } from './errors.js'
import metricsPlugin from './metrics/metrics-plugin.js'
import { fetchObserver, type Metrics } from './metrics/metrics.js'
import healthRoutes from './routes/health.js'
import labelRoutes from './routes/labels.js'
import modelsRoute from './routes/models.js'
import rankRoute from './routes/rank.js'
import scoreRoute from './routes/score.js'
import { sharedSchemas } from './routes/schemas.js'
import type { RouteContext } from './routes/context.js'
import { createImageSource, type ImageSource } from './fetching/image-source.js'
import type { ServiceState } from './service-state.js'
import { addUploadBodies, openapiInfo } from './openapi-info.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** "METHOD /path" of every documented route. */
    apiRoutes: readonly string[]
  }
}

export interface AppDependencies {
  config: Config
  state: ServiceState
  metrics: Metrics
  /** Default: one built from `config`, observed in `metrics`, closed with the app. */
  images?: ImageSource
  /** Resolved thread counts, reported by GET /models (src/threads). */
  threads?: RouteContext['threads']
  logger?: FastifyServerOptions['logger']
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/

/**
 * The HTTP application, with every dependency passed in: tests build it around fakes
 * or real parts as they need, main.ts around the real ones.
 */
export async function buildApp(deps: AppDependencies): Promise<FastifyInstance> {
  const { config, state, metrics } = deps
  const app = Fastify({
    logger: deps.logger ?? false,
    bodyLimit: config.BODY_LIMIT_BYTES,
    // Honour a caller's x-request-id when it is sane; otherwise mint one.
    genReqId: (req) => {
      const incoming = req.headers['x-request-id']
      return typeof incoming === 'string' && REQUEST_ID.test(incoming) ? incoming : randomUUID()
    },
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false } },
  })
  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id)
  })
  // While draining, every response closes its connection, so keep-alive clients move to
  // another instance and server.close() is not held open by idle sockets.
  app.addHook('onSend', async (_request, reply) => {
    if (state.draining) reply.header('connection', 'close')
  })
  for (const schema of sharedSchemas) app.addSchema(schema)
  // The API surface as registered (hidden routes such as page assets left out): the
  // OpenAPI test compares it with openapi.yaml.
  const apiRoutes: string[] = []
  app.addHook('onRoute', (route) => {
    if (route.schema?.hide) return
    for (const method of [route.method].flat()) if (method !== 'HEAD') apiRoutes.push(`${method} ${route.url}`)
  })
  app.decorate('apiRoutes', apiRoutes)

  await app.register(swagger, {
    openapi: openapiInfo,
    refResolver: { buildLocalReference: (json, _base, _frag, i) => String(json.$id ?? `def-${i}`) },
    transformObject: (documentObject) => {
      const doc = 'openapiObject' in documentObject ? documentObject.openapiObject : documentObject.swaggerObject
      addUploadBodies(doc as { paths?: Record<string, unknown> })
      return doc
    },
  })
  await app.register(errorHandler, { metrics })
  const queueDepths = () => Object.fromEntries([...(state.scorer?.models.values() ?? [])].map((m) => [m.info.id, m.queueDepth]))
  await app.register(metricsPlugin, { metrics, state, queueDepths })

  const images = deps.images ?? createImageSource(config, { onFetch: fetchObserver(metrics) })
  // What the app opens, it closes, after in-flight requests have finished.
  if (!deps.images) app.addHook('onClose', () => images.close())
  const ctx: RouteContext = { config, state, metrics, images, threads: deps.threads }
  await app.register(healthRoutes, ctx)
  await app.register(modelsRoute, ctx)
  await app.register(apiKeys, { keys: config.apiKeys })
  // Labelling is opt-in: a writable API is only exposed when a database is configured.
  if (config.LABELS_DB !== '') await app.register(labelRoutes, { ...ctx, dbPath: config.LABELS_DB })
  // Scoring routes share one encapsulated context so the optional rate limit covers
  // exactly them, never the probes or /metrics.
  await app.register(async function scoring(scope) {
    if (config.RATE_LIMIT_MAX > 0) {
      await scope.register(rateLimit, {
        max: config.RATE_LIMIT_MAX,
        timeWindow: config.RATE_LIMIT_WINDOW_MS,
        keyGenerator: (request) => {
          const auth = request.headers.authorization
          return typeof auth === 'string' && auth.length > 7 ? `key:${auth.slice(7)}` : `ip:${request.ip}`
        },
        errorResponseBuilder: (_request, context) =>
          new NimaError('NIMA_RATE_LIMITED', `rate limit of ${context.max} requests per ${context.after} exceeded`, {
            headers: { 'retry-after': String(Math.ceil(context.ttl / 1000)) },
          }),
      })
    }
    await scope.register(scoreRoute, ctx)
    await scope.register(rankRoute, ctx)
  })
  return app
}
