import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { ERROR_TABLE, NimaError, errorCodes, isNimaError } from '../../src/errors.js'
import { projectRoot } from '../helpers/paths.js'

t.test('every code is NIMA_-prefixed, unique, 4xx/5xx, and documented in docs/errors.md', async (t) => {
  const readme = readFileSync(join(projectRoot, 'docs', 'errors.md'), 'utf8')
  t.equal(new Set(errorCodes).size, errorCodes.length)
  for (const code of errorCodes) {
    t.match(code, /^NIMA_[A-Z_]+$/)
    t.ok(ERROR_TABLE[code].status >= 400 && ERROR_TABLE[code].status < 600, `${code} has an error status`)
    t.ok(readme.includes(`\`${code}\``), `${code} is documented in docs/errors.md`)
  }
})

t.test('NimaError carries code, status, headers and is recognised by brand', async (t) => {
  const e = new NimaError('NIMA_OVERLOADED', undefined, { headers: { 'retry-after': '1' } })
  t.equal(e.statusCode, 503)
  t.equal(e.message, ERROR_TABLE.NIMA_OVERLOADED.message)
  t.ok(isNimaError(e))
  t.notOk(isNimaError(new Error('x')))
  t.notOk(isNimaError(null))
})
