/**
 * Shared fixtures for the fetching tests: real HTTP servers on 127.0.0.1 port 0, a
 * recording resolver, and a probe on undici's `beforeConnect` channel that proves
 * which address (if any) a socket was opened to.
 */
import diagnosticsChannel from 'node:diagnostics_channel'
import http from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import type { LookupAddress, LookupFunction } from '../../src/fetching/fetch-image.js'

/** The subset of a tap Test that the helpers need. */
interface Teardown {
  teardown(fn: () => unknown): void
}

export interface TestServer {
  readonly port: number
  /** `http://127.0.0.1:<port><path>` */
  url(path?: string): string
  /** `http://<host>:<port><path>` for a hostname the injected resolver maps. */
  urlFor(host: string, path?: string): string
  /** TCP connections accepted so far. */
  readonly connections: number
  /** Requests received so far. */
  readonly requests: http.IncomingMessage[]
  /** Sockets that have closed so far. */
  readonly closedSockets: number
  /** Resolves when the next accepted socket closes. */
  nextSocketClose(): Promise<void>
}

export async function startServer(
  t: Teardown,
  handler: (req: http.IncomingMessage, res: http.ServerResponse) => void,
): Promise<TestServer> {
  const requests: http.IncomingMessage[] = []
  const sockets = new Set<Socket>()
  const closeWaiters: Array<() => void> = []
  let connections = 0
  let closedSockets = 0

  const server = http.createServer((req, res) => {
    requests.push(req)
    handler(req, res)
  })
  server.on('connection', (socket: Socket) => {
    connections += 1
    sockets.add(socket)
    socket.on('close', () => {
      closedSockets += 1
      sockets.delete(socket)
      closeWaiters.shift()?.()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(
    () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy()
        server.close(() => resolve())
      }),
  )
  const { port } = server.address() as AddressInfo
  return {
    port,
    url: (path = '/') => `http://127.0.0.1:${port}${path}`,
    urlFor: (host, path = '/') => `http://${host}:${port}${path}`,
    get connections() {
      return connections
    },
    get closedSockets() {
      return closedSockets
    },
    requests,
    nextSocketClose: () => new Promise<void>((resolve) => closeWaiters.push(resolve)),
  }
}

/** A port with nothing listening on it (bound, then released). */
export async function closedPort(): Promise<number> {
  const server = http.createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

export interface RecordingLookup {
  lookup: LookupFunction
  /** Hostnames looked up, in order. */
  readonly calls: string[]
}

/**
 * A resolver answering from `answers`. A function answer is called with the number of
 * earlier lookups of that name (0 for the first), to script rebinding attacks.
 * Unknown names fail with ENOTFOUND, as the system resolver would.
 */
export function recordingLookup(
  answers: Record<string, string[] | ((nth: number) => string[])>,
): RecordingLookup {
  const calls: string[] = []
  const lookup: LookupFunction = async (hostname) => {
    const nth = calls.filter((name) => name === hostname).length
    calls.push(hostname)
    const answer = answers[hostname]
    if (answer === undefined) {
      throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' })
    }
    const addresses = typeof answer === 'function' ? answer(nth) : answer
    return addresses.map((address): LookupAddress => ({ address, family: address.includes(':') ? 6 : 4 }))
  }
  return { lookup, calls }
}

export interface ConnectProbe {
  /** `hostname` of every connection undici attempted (the IP handed to the socket). */
  readonly attempts: string[]
}

/** Records every connection attempt undici makes in this process, until teardown. */
export function probeConnects(t: Teardown): ConnectProbe {
  const attempts: string[] = []
  const onMessage = (message: unknown): void => {
    const params = (message as { connectParams?: { hostname?: string } }).connectParams
    attempts.push(params?.hostname ?? '?')
  }
  diagnosticsChannel.subscribe('undici:client:beforeConnect', onMessage)
  t.teardown(() => diagnosticsChannel.unsubscribe('undici:client:beforeConnect', onMessage))
  return { attempts }
}

export const PNG_BYTES = Buffer.from('89504e470d0a1a0a0000000d49484452', 'hex')

/** The rejection reason of `promise`; throws when it resolves instead. */
export async function caught(promise: Promise<unknown>): Promise<Record<string, unknown> & Error> {
  try {
    await promise
  } catch (err) {
    return err as Record<string, unknown> & Error
  }
  throw new Error('expected a rejection, but the promise resolved')
}
