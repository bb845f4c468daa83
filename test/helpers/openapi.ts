import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config/load.js'
import { createMetrics } from '../../src/metrics/metrics.js'
import { ServiceState } from '../../src/service-state.js'

/** The OpenAPI document as the code describes it, without models or network. */
export async function openapiYaml(): Promise<string> {
  const app = await buildApp({
    config: loadConfig({}, { LOG_LEVEL: 'silent', LABELS_DB: ':memory:' }),
    state: new ServiceState(),
    metrics: createMetrics(),
  })
  await app.ready()
  const yaml = app.swagger({ yaml: true })
  await app.close()
  return yaml
}
