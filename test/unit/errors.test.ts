import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { ConfigError } from '../../src/config/load.js'
import { FinetuneError } from '../../src/finetune/finetune-error.js'
import { ModelError } from '../../src/models/model-error.js'
import { EXIT_CODES, ERROR_TABLE, NimaError, errorCodes, failureKind, isNimaError, multipartError, toNimaError } from '../../src/errors.js'
import { projectRoot } from '../helpers/paths.js'

const doc = readFileSync(join(projectRoot, 'docs', 'errors.md'), 'utf8')

/** docs/errors.md's table: one `code → status` per row, in the order written. */
const documented = [...doc.matchAll(/^\| `(NIMA_[A-Z_]+)` \| (\d{3}) \|/gm)].map((m) => ({ code: m[1]!, status: Number(m[2]) }))

t.test('docs/errors.md documents every code once, with its status, and no code that does not exist', async (t) => {
  t.same(documented.map((d) => d.code).sort(), [...errorCodes].sort(), 'the documented codes are exactly the table')
  t.equal(new Set(documented.map((d) => d.code)).size, documented.length, 'no code documented twice')
  for (const { code, status } of documented) t.equal(status, ERROR_TABLE[code as keyof typeof ERROR_TABLE]?.status, `${code}: documented status is the table's`)
})

t.test('every code is NIMA_-prefixed, has an error status and a message, and a NimaError reports it', async (t) => {
  for (const code of errorCodes) {
    t.match(code, /^NIMA_[A-Z_]+$/)
    const e = new NimaError(code)
    t.equal(e.code, code)
    t.equal(e.statusCode, ERROR_TABLE[code].status)
    t.ok(e.statusCode >= 400 && e.statusCode < 600, `${code} has an error status`)
    t.ok(e.message.length > 0, `${code} has a default message`)
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

t.test('toNimaError maps fastify and multipart errors onto the table, anything else to NIMA_INTERNAL', async (t) => {
  const own = new NimaError('NIMA_URL_BLOCKED')
  t.equal(toNimaError(own), own, 'our own error passes through')
  const validation = Object.assign(new Error('body/images must be array'), { validation: [{}], validationContext: 'body' })
  t.match(toNimaError(validation), { code: 'NIMA_INVALID_REQUEST', message: 'body/images must be array' })
  t.match(toNimaError(Object.assign(new Error("'%' is not a valid url"), { code: 'FST_ERR_BAD_URL', statusCode: 400 })), { code: 'NIMA_MALFORMED_REQUEST' })
  t.match(toNimaError(Object.assign(new Error('too big'), { statusCode: 413 })), { code: 'NIMA_PAYLOAD_TOO_LARGE', message: 'too big' })
  t.match(toNimaError(Object.assign(new Error('text/plain'), { statusCode: 415 })), { code: 'NIMA_UNSUPPORTED_MEDIA_TYPE', message: `${ERROR_TABLE.NIMA_UNSUPPORTED_MEDIA_TYPE.message}: text/plain` })
  const bug = toNimaError(new TypeError('x is undefined'))
  t.equal(bug.code, 'NIMA_INTERNAL')
  t.equal(bug.message, ERROR_TABLE.NIMA_INTERNAL.message, 'a bug says nothing of its internals')
  t.match(multipartError(new Error('Unexpected end of form')), { code: 'NIMA_INVALID_REQUEST', message: 'malformed multipart body: Unexpected end of form' })
  t.match(multipartError(Object.assign(new Error('file too large'), { statusCode: 413 })), { code: 'NIMA_PAYLOAD_TOO_LARGE' })
})

t.test('one exit-code table: each error class says its kind, anything unbranded is a bug', async (t) => {
  const kinds: [unknown, keyof typeof EXIT_CODES][] = [
    [new ConfigError('MODELS: bad'), 'usage'],
    [new ModelError('MODEL_USAGE', '--task: bad'), 'usage'],
    [new ModelError('MODEL_OFFLINE', 'offline'), 'failed'],
    [new FinetuneError('--epochs: bad', { usage: true }), 'usage'],
    [new FinetuneError('no labels'), 'failed'],
    [new NimaError('NIMA_UNDECODABLE_IMAGE'), 'failed'],
    [Object.assign(new Error("ENOENT: no such file or directory, open 'x'"), { code: 'ENOENT', syscall: 'open' }), 'failed'],
    [new TypeError('x is undefined'), 'bug'],
    [new RangeError('out of range'), 'bug'],
    ['a string', 'bug'],
    [undefined, 'bug'],
  ]
  for (const [err, kind] of kinds) t.equal(failureKind(err), kind, `${(err as Error)?.name ?? String(err)}: ${(err as Error)?.message ?? ''}`)
  t.same(EXIT_CODES, { usage: 2, failed: 1, bug: 1 })
  for (const [kind, code] of Object.entries(EXIT_CODES)) t.match(doc, new RegExp(`^\\| ${code} \\| \`${kind}\` \\|`, 'm'), `docs/errors.md lists exit ${code} (${kind})`)
})
