import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config/load.js'
import { createMetrics } from '../../src/metrics/metrics.js'
import { ServiceState } from '../../src/service-state.js'

/** Routes that exist only with API_KEYS set: documented, but not served by a keyless test service. */
export const KEYED_ROUTES = ['POST /admin/models/reload']

/**
 * The OpenAPI document as the code describes it, without models or network: every route,
 * including those that need configuration (labels, API keys).
 */
export async function openapiYaml(): Promise<string> {
  const app = await buildApp({
    config: loadConfig({}, { LOG_LEVEL: 'silent', LABELS_DB: ':memory:', API_KEYS: 'document-every-route' }),
    state: new ServiceState(),
    metrics: createMetrics(),
    models: { reload: () => Promise.reject(new Error('not used')), last: undefined },
  })
  await app.ready()
  const yaml = app.swagger({ yaml: true })
  await app.close()
  return yaml
}
