import type { AddressInfo } from 'node:net'
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import { pino } from 'pino'
import { loadConfig } from '../../src/config/load.js'
import { ConfigSchema, type RawConfig } from '../../src/config/schema.js'
import { createImageSource } from '../../src/fetching/image-source.js'
import apiKeys from '../../src/http/auth.js'
import errorHandler from '../../src/http/error-handler.js'
import { createMetrics } from '../../src/metrics/metrics.js'
import labelRoutes from '../../src/routes/labels.js'
import { sharedSchemas } from '../../src/routes/schemas.js'
import { loadScorer } from '../../src/scoring/load-scorer.js'
import { ServiceState } from '../../src/service-state.js'
import { testModelsDir } from '../helpers/models.js'
import { startTestService } from '../helpers/service.js'

export interface LabelApp {
  app: FastifyInstance
  url: string
  close: () => Promise<void>
}

/**
 * The labelling plugin in a fastify instance built like src/app.ts builds the service's
 * (shared schemas, error handler, API keys, then the routes), listening on 127.0.0.1:0.
 * URLs on 127.0.0.1 are allowed so tests can serve images from a local upstream.
 */
export async function startLabelApp(dbPath: string, overrides: Partial<RawConfig> = {}): Promise<LabelApp> {
  const config = loadConfig({}, { LOG_LEVEL: 'silent', URL_ALLOWLIST: '127.0.0.1', MODELS_DIR: await testModelsDir(), ...overrides })
  const metrics = createMetrics()
  // Label uploads are decoded by the scorer's admission and decode processes, as in the service.
  const state = new ServiceState()
  state.setScorer(await loadScorer(config, pino({ level: 'silent' }) as unknown as FastifyBaseLogger))
  const images = createImageSource(config)
  const app = Fastify({ bodyLimit: config.BODY_LIMIT_BYTES, ajv: { customOptions: { removeAdditional: false, coerceTypes: false, allErrors: false } } })
  for (const schema of sharedSchemas) app.addSchema(schema)
  await app.register(errorHandler, { metrics })
  await app.register(apiKeys, { keys: config.apiKeys })
  await app.register(labelRoutes, {
    config,
    state,
    metrics,
    images,
    dbPath,
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = app.server.address() as AddressInfo
  return {
    app,
    url: `http://127.0.0.1:${port}`,
    close: async () => {
      await app.close()
      await images.close()
      await state.scorer?.dispose()
    },
  }
}

/** Whether the lead has wired the labelling routes into the service (LABELS_DB in the config schema). */
export const serviceHasLabels = 'LABELS_DB' in ConfigSchema.properties

/**
 * The real service with the labelling routes on, once they are wired in (LABELS_DB);
 * until then the plugin on its own (startLabelApp).
 */
export async function startLabellingService(dbPath: string, overrides: Partial<RawConfig> = {}): Promise<{ url: string; close: () => Promise<void>; real: boolean }> {
  if (serviceHasLabels) {
    const svc = await startTestService({ LABELS_DB: dbPath, ...overrides } as Partial<RawConfig>)
    return { url: svc.url, close: async () => void (await svc.server.shutdown()), real: true }
  }
  const own = await startLabelApp(dbPath, overrides)
  return { url: own.url, close: own.close, real: false }
}
