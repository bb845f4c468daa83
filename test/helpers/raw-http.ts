import { connect, type Socket } from 'node:net'

export interface RawAnswer {
  /** 0 when the connection closed without an answer. */
  status: number
  /** Interim (1xx) statuses received before it, e.g. 100 Continue. */
  interim: number[]
  headers: Record<string, string>
  body: string
  /** From the first byte sent to the first byte of the answer (NaN without one). */
  ms: number
}

export interface RawExchange {
  socket: Socket
  /** Settles when the server closes the connection, or after `closeAfterMs` with what came by then. */
  answer: Promise<RawAnswer>
}

function parse(all: string, ms: number): RawAnswer {
  const interim: number[] = []
  let raw = all
  for (let m; (m = /^HTTP\/1\.[01] (1\d\d)[^\r]*\r\n(?:[^\r]+\r\n)*\r\n/.exec(raw)); raw = raw.slice(m[0].length)) interim.push(Number(m[1]))
  const end = raw.indexOf('\r\n\r\n')
  const head = end < 0 ? raw : raw.slice(0, end)
  const [statusLine = '', ...lines] = head.split('\r\n')
  const headers: Record<string, string> = {}
  for (const line of lines) {
    const i = line.indexOf(':')
    if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim()
  }
  let body = end < 0 ? '' : raw.slice(end + 4)
  if (headers['transfer-encoding'] === 'chunked') {
    let out = ''
    for (let rest = body; ; ) {
      const nl = rest.indexOf('\r\n')
      const size = parseInt(rest.slice(0, nl), 16)
      if (!(size > 0)) break
      out += rest.slice(nl + 2, nl + 2 + size)
      rest = rest.slice(nl + 2 + size + 2)
    }
    body = out
  }
  return { status: Number(/^HTTP\/1\.[01] (\d{3})/.exec(statusLine)?.[1] ?? 0), interim, headers, body, ms }
}

/**
 * Sends `bytes` on a fresh connection exactly as given (malformed HTTP included) and
 * collects the first answer. The socket is left open for the caller to stall or close.
 */
export function rawExchange(baseUrl: string, bytes: string | Buffer, closeAfterMs = 5000): RawExchange {
  const { hostname, port } = new URL(baseUrl)
  const socket = connect(Number(port), hostname)
  const started = performance.now()
  let firstByte = Number.NaN
  let raw = ''
  socket.on('error', () => {})
  socket.write(bytes)
  const answer = new Promise<RawAnswer>((resolve) => {
    const timer = setTimeout(() => {
      resolve(parse(raw, firstByte - started))
      socket.destroy()
    }, closeAfterMs)
    socket.on('data', (d: Buffer) => {
      if (Number.isNaN(firstByte)) firstByte = performance.now()
      raw += d.toString('latin1')
      // A whole answer with a length: done, whether or not the server keeps the connection.
      const parsed = parse(raw, firstByte - started)
      const length = Number(parsed.headers['content-length'])
      if (raw.includes('\r\n\r\n') && Number.isFinite(length) && Buffer.byteLength(parsed.body, 'latin1') >= length) {
        clearTimeout(timer)
        resolve(parsed)
      }
    })
    socket.on('close', () => {
      clearTimeout(timer)
      resolve(parse(raw, firstByte - started))
    })
  })
  return { socket, answer }
}
