import t from 'tap'
import { loadConfig } from '../../src/config/load.js'
import { createImageSource, type FetchObservation } from '../../src/fetching/image-source.js'
import { startUpstream } from '../helpers/service.js'

t.test('one door for URL inputs: per-host limit across callers, every fetch observed', async (t) => {
  let running = 0
  let peak = 0
  const upstream = await startUpstream((_req, res) => {
    running += 1
    peak = Math.max(peak, running)
    setTimeout(() => {
      running -= 1
      res.writeHead(200).end(Buffer.from([0xff, 0xd8, 0xff, 0xe0]))
    }, 30)
  })
  t.teardown(upstream.close)
  const seen: FetchObservation[] = []
  const config = loadConfig({}, { URL_ALLOWLIST: '127.0.0.1', RANK_PER_HOST_CONCURRENCY: 2 })
  const images = createImageSource(config, { onFetch: (o) => seen.push(o) })
  t.teardown(() => images.close())

  const results = await Promise.all(Array.from({ length: 6 }, (_, i) => images.fetch(`${upstream.url}/${i}.jpg`)))
  t.equal(peak, 2, 'never more than RANK_PER_HOST_CONCURRENCY requests at the host at once')
  t.ok(results.every((r) => r.bytes.length === 4 && r.fetchMs > 0))
  t.equal(images.hosts.hosts, 0, 'idle hosts are forgotten')

  await t.rejects(images.fetch('not a url'), { code: 'NIMA_URL_INVALID' })
  await t.rejects(images.fetch('http://10.0.0.1/a.jpg'), { code: 'NIMA_URL_BLOCKED' })
  t.same(
    seen.map((o) => [o.outcome, o.bytes]),
    [...Array.from({ length: 6 }, () => ['ok', 4]), ['NIMA_URL_INVALID', undefined], ['NIMA_URL_BLOCKED', undefined]],
  )
})
