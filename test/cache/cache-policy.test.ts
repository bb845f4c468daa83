import t from 'tap'
import { cachePolicy } from '../../src/fetching/cache-policy.js'

t.test('Cache-Control as a shared cache reads it', async (t) => {
  t.same(cachePolicy({}), { noStore: false, freshForMs: 0 }, 'nothing said: revalidate every time')
  t.same(cachePolicy({ cacheControl: 'no-store' }), { noStore: true, freshForMs: 0 })
  t.same(cachePolicy({ cacheControl: 'public, max-age=600, No-Store' }), { noStore: true, freshForMs: 0 }, 'no-store wins, any case')
  t.same(cachePolicy({ cacheControl: 'max-age=600' }), { noStore: false, freshForMs: 600_000 })
  t.same(cachePolicy({ cacheControl: 'max-age=600', age: 100 }), { noStore: false, freshForMs: 500_000 }, 'Age counts against max-age')
  t.same(cachePolicy({ cacheControl: 'max-age=60', age: 100 }), { noStore: false, freshForMs: 0 })
  t.same(cachePolicy({ cacheControl: 'max-age=600, s-maxage=30' }), { noStore: false, freshForMs: 30_000 }, 's-maxage, for shared caches, first')
  t.same(cachePolicy({ cacheControl: 'no-cache, max-age=600' }), { noStore: false, freshForMs: 0 }, 'no-cache: always revalidate')
  t.same(cachePolicy({ cacheControl: 'max-age="120"' }), { noStore: false, freshForMs: 120_000 })
  t.same(cachePolicy({ cacheControl: 'max-age=abc' }), { noStore: false, freshForMs: 0 })
})
