/**
 * Writes openapi.yaml from the route schemas (the single source). test/service/openapi.test.ts
 * fails when the committed file drifts from what the code generates.
 */
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { openapiYaml } from '../test/helpers/openapi.js'
import { projectRoot } from '../test/helpers/paths.js'

writeFileSync(join(projectRoot, 'openapi.yaml'), await openapiYaml())
process.stdout.write('wrote openapi.yaml\n')
