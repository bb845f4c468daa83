import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { keyMatcher } from '../../src/http/auth.js'
import { sharedImages } from '../helpers/paths.js'
import { startTestService } from '../helpers/service.js'

const jpeg = readFileSync(join(sharedImages, 'idealo/42040.jpg'))

t.test('keyMatcher accepts exactly the configured keys', async (t) => {
  const m = keyMatcher(['alpha', 'beta-longer-key'])
  t.ok(m('alpha'))
  t.ok(m('beta-longer-key'))
  t.notOk(m('alph'))
  t.notOk(m('alphaX'))
  t.notOk(m(''))
})

t.test('API keys: scoring needs a valid bearer token, probes and metrics stay open', async (t) => {
  const svc = await startTestService({ API_KEYS: 'k1,k2' })
  t.teardown(() => svc.server.shutdown())
  const score = (auth?: string) =>
    fetch(svc.url + '/score', { method: 'POST', body: jpeg, headers: { 'content-type': 'image/jpeg', ...(auth ? { authorization: auth } : {}) } })
  const none = await score()
  t.equal(none.status, 401)
  t.equal(none.headers.get('www-authenticate'), 'Bearer')
  t.equal(((await none.json()) as any).error.code, 'NIMA_UNAUTHORIZED')
  t.equal((await score('Bearer wrong')).status, 401)
  t.equal((await score('Basic k1')).status, 401)
  t.equal((await score('Bearer k2')).status, 200)
  t.equal((await fetch(svc.url + '/models')).status, 401)
  for (const open of ['/healthz', '/readyz', '/metrics']) t.equal((await fetch(svc.url + open)).status, 200, `${open} needs no key`)
})

t.test('rate limit: 429 with Retry-After past the limit, probes unaffected', async (t) => {
  const svc = await startTestService({ RATE_LIMIT_MAX: 2, RATE_LIMIT_WINDOW_MS: 60000 })
  t.teardown(() => svc.server.shutdown())
  const statuses: number[] = []
  let last: Response | undefined
  for (let i = 0; i < 3; i++) {
    last = await fetch(svc.url + '/score', { method: 'POST', body: jpeg, headers: { 'content-type': 'image/jpeg' } })
    statuses.push(last.status)
  }
  t.same(statuses, [200, 200, 429])
  const body = (await last!.json()) as any
  t.equal(body.error.code, 'NIMA_RATE_LIMITED')
  t.ok(Number(last!.headers.get('retry-after')) > 0)
  for (let i = 0; i < 5; i++) t.equal((await fetch(svc.url + '/healthz')).status, 200)
})
