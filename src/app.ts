import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import swagger from '@fastify/swagger'
import cors from '@fastify/cors'
import rateLimit from '@fastify/rate-limit'
import type { Config } from './config/load.js'
import apiKeys from './http/auth.js'
import errorHandler, { sendError } from './http/error-handler.js'
import { AccessLog } from './http/logger.js'
import { checkHostHeader, clientErrorHandler, expectationHandler } from './http/protocol-errors.js'
import { requestIdFrom } from './http/request-id.js'
import { holdScorerFromHeaders } from './http/request-lifecycle.js'
import { receiveTimeouts } from './http/timeouts.js'
import uploadBudget, { UploadBudget } from './http/upload-budget.js'
import { NimaError, toNimaError } from './errors.js'
import metricsPlugin from './metrics/metrics-plugin.js'
import { cacheObserver, fetchObserver, type Metrics } from './metrics/metrics.js'
import scoreCachePlugin from './cache/cache-plugin.js'
import type { TieredScoreCache } from './cache/tiered-cache.js'
import healthRoutes from './routes/health.js'
import adminRoutes from './routes/admin.js'
import explainRoute from './routes/explain.js'
import labelRoutes from './routes/labels.js'
import modelsRoute from './routes/models.js'
import pageRoutes from './routes/pages.js'
import rankRoute from './routes/rank.js'
import scoreRoute from './routes/score.js'
import oipRoutes from './routes/oip/index.js'
import { sharedSchemas } from './routes/schemas.js'
import type { RouteContext } from './routes/context.js'
import { createImageSource, type ImageSource } from './fetching/image-source.js'
import type { ServiceState } from './service-state.js'
import { addUploadBodies, dropUnusedTags, openapiInfo, transformRoute } from './routes/openapi-info.js'
import { activeTraceIds } from './util/tracing.js'

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
  /** Default: the score cache `config` asks for (src/cache/), closed with the app. Tests pass one to share it. */
  cache?: TieredScoreCache | undefined
  /** Resolved thread counts, reported by GET /models (src/threads). */
  threads?: RouteContext['threads']
  /** Hot reload of the models: POST /admin/models/reload and GET /models `reload`. */
  models?: RouteContext['models']
  logger?: FastifyServerOptions['logger']
}

/**
 * The HTTP application, with every dependency passed in: tests build it around fakes
 * or real parts as they need, main.ts around the real ones.
 */
export async function buildApp(deps: AppDependencies): Promise<FastifyInstance> {
  const { config, state, metrics } = deps
  const timeouts = receiveTimeouts(config.BODY_TIMEOUT_MS)
  const app = Fastify({
    logger: deps.logger ?? false,
    logController: new AccessLog(),
    bodyLimit: config.BODY_LIMIT_BYTES,
    genReqId: (req) => requestIdFrom(req.headers),
    // A slow or stalled request is answered 408 and its connection closed, which lets go of
    // whatever of its body was buffered. Host is checked in onRequest below, with our answer.
    requestTimeout: timeouts.requestTimeout,
    http: { ...timeouts, requireHostHeader: false },
    clientErrorHandler: clientErrorHandler({ metrics, bodyTimeoutMs: config.BODY_TIMEOUT_MS }),
    frameworkErrors: (err, request, reply) => {
      reply.header('x-request-id', request.id)
      return sendError(reply, request, toNimaError(err), metrics)
    },
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false } },
  })
  app.server.on('checkExpectation', expectationHandler({ metrics, log: app.log }))
  // Node would answer `Expect: 100-continue` at once; routed like any request instead, the
  // body is asked for only once the upload budget has taken it (upload-budget.ts), so
  // requests refused by their headers (401, 429, 503) are never sent their body.
  app.server.on('checkContinue', (req, res) => app.server.emit('request', req, res))
  app.addHook('onRequest', async (request, reply) => {
    reply.header('x-request-id', request.id)
    // Tracing on (src/tracing/): the server span is active here. Its ids go back to the
    // client (W3C Trace Context Level 2) and onto every log line of the request.
    const trace = activeTraceIds()
    if (trace) {
      reply.header('traceresponse', trace.traceresponse)
      request.log = reply.log = request.log.child({ trace_id: trace.trace_id, span_id: trace.span_id })
    }
    checkHostHeader(request.raw)
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
    openapi: openapiInfo(config.apiKeys.length > 0),
    transform: transformRoute(config.apiKeys.length > 0),
    refResolver: { buildLocalReference: (json, _base, _frag, i) => String(json.$id ?? `def-${i}`) },
    transformObject: (documentObject) => {
      const doc = 'openapiObject' in documentObject ? documentObject.openapiObject : documentObject.swaggerObject
      addUploadBodies(doc as { paths?: Record<string, unknown> })
      dropUnusedTags(doc as Parameters<typeof dropUnusedTags>[0])
      return doc
    },
  })
  await app.register(errorHandler, { metrics })
  const uploads = new UploadBudget(config.UPLOAD_BUDGET_BYTES)
  await app.register(uploadBudget, { budget: uploads, bodyLimit: config.BODY_LIMIT_BYTES })
  await app.register(scoreCachePlugin, { config, observer: cacheObserver(metrics), ...('cache' in deps ? { cache: deps.cache } : {}) })
  await app.register(metricsPlugin, { metrics, state, uploadReservedBytes: () => uploads.reserved, cache: app.scoreCache })

  const images = deps.images ?? createImageSource(config, { onFetch: fetchObserver(metrics) })
  // What the app opens, it closes, after in-flight requests have finished.
  if (!deps.images) app.addHook('onClose', () => images.close())
  const ctx: RouteContext = { config, state, metrics, images, cache: app.scoreCache, threads: deps.threads, models: deps.models }
  await app.register(healthRoutes, ctx)
  await app.register(modelsRoute, ctx)
  // Opt-in: only the configured origins' pages may call the API from a browser. Before the
  // key check, so a preflight (which never carries the key) is answered rather than refused.
  if (config.corsOrigins.length > 0) {
    await app.register(cors, {
      origin: config.corsOrigins.includes('*') ? '*' : [...config.corsOrigins],
      methods: ['GET', 'POST', 'PUT', 'DELETE'],
      // inference-header-content-length: the OIP binary tensor framing (src/routes/oip/), both ways;
      // traceparent/tracestate in and traceresponse out: W3C Trace Context (docs/observability.md).
      allowedHeaders: ['authorization', 'content-type', 'x-request-id', 'inference-header-content-length', 'traceparent', 'tracestate'],
      exposedHeaders: ['x-request-id', 'retry-after', 'inference-header-content-length', 'traceresponse'],
      maxAge: 600,
    })
  }
  await app.register(pageRoutes)
  await app.register(apiKeys, { keys: config.apiKeys })
  // Labelling is opt-in: a writable API is only exposed when a database is configured.
  if (config.LABELS_DB !== '') await app.register(labelRoutes, { ...ctx, dbPath: config.LABELS_DB })
  // Reloading models is an operator's action: only behind API keys.
  if (config.apiKeys.length > 0 && deps.models) await app.register(adminRoutes, ctx)
  // Scoring routes share one encapsulated context so the optional rate limit covers
  // exactly them, never the probes or /metrics.
  await app.register(async function scoring(scope) {
    // An upload in progress when draining begins is still served (request-lifecycle.ts).
    scope.addHook('preParsing', holdScorerFromHeaders(state))
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
    await scope.register(explainRoute, ctx)
    // The Open Inference Protocol (KServe v2) beside them; only its /infer is rate limited.
    await scope.register(oipRoutes, { ...ctx, prefix: '/v2', server: { name: 'nima-serve', version: openapiInfo(false).info.version } })
  })
  return app
}
