/**
 * https through an address-pinned connection: the socket goes to the checked IP, but
 * SNI and certificate verification still use the hostname from the URL.
 * fixtures/images-intranet.*.pem: a self-signed test-only certificate for
 * images.intranet (openssl req -x509 -newkey ec … -days 36500).
 */
import { readFileSync } from 'node:fs'
import https from 'node:https'
import type { AddressInfo } from 'node:net'
import tls from 'node:tls'
import t, { type Test } from 'tap'
import { createAddressPolicy } from '../../src/fetching/address-policy.js'
import { createImageFetcher, type ImageFetcherOptions } from '../../src/fetching/fetch-image.js'
import { caught, probeConnects, recordingLookup } from './helpers.js'

const fixture = (name: string) => readFileSync(new URL(`./fixtures/${name}`, import.meta.url))
const cert = fixture('images-intranet.cert.pem')
const key = fixture('images-intranet.key.pem')

async function startTlsServer(t: Test) {
  const servernames: Array<string | false> = []
  const context = tls.createSecureContext({ key, cert })
  const server = https.createServer(
    {
      key,
      cert,
      SNICallback: (servername, callback) => {
        servernames.push(servername)
        callback(null, context)
      },
    },
    (req, res) => res.end(`hello ${req.headers.host}`),
  )
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => {
    server.closeAllConnections()
    return new Promise<void>((resolve) => server.close(() => resolve()))
  })
  return { port: (server.address() as AddressInfo).port, servernames }
}

function fetcherFor(t: Test, options: ImageFetcherOptions) {
  const fetcher = createImageFetcher({
    policy: createAddressPolicy({ allow: ['images.intranet', 'other.intranet'] }),
    lookup: recordingLookup({ 'images.intranet': ['127.0.0.1'], 'other.intranet': ['127.0.0.1'] }).lookup,
    ...options,
  })
  t.teardown(() => fetcher.close())
  return fetcher
}

t.test('SNI and the certificate check use the hostname, the socket uses the checked address', async (t) => {
  const server = await startTlsServer(t)
  const probe = probeConnects(t)
  const fetcher = fetcherFor(t, { ca: cert })

  const image = await fetcher.fetch(`https://images.intranet:${server.port}/a.jpg`)
  t.equal(image.bytes.toString(), `hello images.intranet:${server.port}`)
  t.equal(image.remoteAddress, '127.0.0.1')
  t.same(probe.attempts, ['127.0.0.1'])
  t.same(server.servernames, ['images.intranet'])
})

t.test('a certificate for another name is rejected', async (t) => {
  const server = await startTlsServer(t)
  const fetcher = fetcherFor(t, { ca: [cert] })
  const err = await caught(fetcher.fetch(`https://other.intranet:${server.port}/a.jpg`))
  t.match(err, { code: 'NIMA_UPSTREAM_FAILED', message: /failed \(ERR_TLS_CERT_ALTNAME_INVALID\)/ })
  t.same(server.servernames, ['other.intranet'])
})

t.test('certificates are verified: an untrusted one fails', async (t) => {
  const server = await startTlsServer(t)
  const fetcher = fetcherFor(t, {})
  const err = await caught(fetcher.fetch(`https://images.intranet:${server.port}/a.jpg`))
  t.match(err, { code: 'NIMA_UPSTREAM_FAILED', message: /failed \(DEPTH_ZERO_SELF_SIGNED_CERT\)/ })
})

t.test('the ca option is validated', async (t) => {
  t.throws(() => createImageFetcher({ ca: [42 as never] }), { name: 'TypeError', message: /option ca must be PEM text or Buffers/ })
})
