import t from 'tap'
import { loadConfig } from '../../src/config/load.js'
import { receiveTimeouts } from '../../src/http/timeouts.js'
import { UploadBudget, bodyReservation } from '../../src/http/upload-budget.js'

t.test('bodyReservation: declared length capped at the limit, the limit when chunked, 0 without a body', async (t) => {
  t.equal(bodyReservation({ 'content-length': '1000' }, 5000), 1000)
  t.equal(bodyReservation({ 'content-length': '9000' }, 5000), 5000, 'capped: a longer body is refused with 413 anyway')
  t.equal(bodyReservation({ 'transfer-encoding': 'chunked' }, 5000), 5000)
  t.equal(bodyReservation({}, 5000), 0)
  t.equal(bodyReservation({ 'content-length': '0' }, 5000), 0)
})

t.test('UploadBudget: reserves up to its limit, each release gives back once', async (t) => {
  const budget = new UploadBudget(100)
  const a = budget.tryReserve(60)
  t.ok(a)
  t.equal(budget.tryReserve(41), undefined, 'over the limit: refused, nothing reserved')
  t.equal(budget.reserved, 60)
  const b = budget.tryReserve(40)
  t.ok(b, 'exactly at the limit fits')
  a!()
  a!()
  t.equal(budget.reserved, 40, 'a second release of the same reservation changes nothing')
  b!()
  t.equal(budget.reserved, 0)
})

t.test('receiveTimeouts: Node checks often enough for the timeout to mean something', async (t) => {
  t.same(receiveTimeouts(30_000), { requestTimeout: 30_000, headersTimeout: 30_000, connectionsCheckingInterval: 1000 })
  t.same(receiveTimeouts(120_000), { requestTimeout: 120_000, headersTimeout: 60_000, connectionsCheckingInterval: 1000 })
  t.same(receiveTimeouts(400), { requestTimeout: 400, headersTimeout: 400, connectionsCheckingInterval: 100 })
  t.equal(receiveTimeouts(100).connectionsCheckingInterval, 25)
})

t.test('UPLOAD_BUDGET_BYTES below the largest upload (BODY_LIMIT_BYTES or RANK_UPLOAD_MAX_BYTES) is refused at start-up', async (t) => {
  t.throws(() => loadConfig({ BODY_LIMIT_BYTES: '2000000', UPLOAD_BUDGET_BYTES: '1000000', RANK_UPLOAD_MAX_BYTES: '1000000' }), /UPLOAD_BUDGET_BYTES: must be at least BODY_LIMIT_BYTES \(2000000\) \(got 1000000\)/)
  t.throws(() => loadConfig({ UPLOAD_BUDGET_BYTES: '50000000' }), /UPLOAD_BUDGET_BYTES: must be at least RANK_UPLOAD_MAX_BYTES \(104857600\) \(got 50000000\)/)
  t.equal(loadConfig({}).UPLOAD_BUDGET_BYTES, 256 * 1024 * 1024)
})
