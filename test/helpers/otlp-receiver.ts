/**
 * A real OTLP/HTTP trace receiver for tests: a node:http server on 127.0.0.1 (free port)
 * that takes POST /v1/traces as OTLP/JSON or OTLP/protobuf, decodes what arrives and keeps
 * the spans. The protobuf side is a wire-format reader for the fields of
 * opentelemetry-proto's trace.proto that the tests read (the exporter ships an encoder
 * only, no .proto files), written from the field numbers below, independently of the
 * exporter's own code.
 */
import { createServer, type IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'

export type AttributeValue = string | number | boolean | AttributeValue[]

export interface ReceivedSpan {
  traceId: string
  spanId: string
  /** '' for a root span. */
  parentSpanId: string
  name: string
  /** OTLP SpanKind: 1 internal, 2 server, 3 client, 4 producer, 5 consumer. */
  kind: number
  startNs: bigint
  endNs: bigint
  attributes: Record<string, AttributeValue>
  links: { traceId: string; spanId: string }[]
  status: { code: number; message: string }
  resource: Record<string, AttributeValue>
  scope: string
}

export interface OtlpReceiver {
  /** Base URL, for OTEL_EXPORTER_OTLP_ENDPOINT (the exporter appends /v1/traces). */
  url: string
  spans: ReceivedSpan[]
  /** Content types of the export requests received, in order. */
  contentTypes: string[]
  /** Resolves once `predicate` holds for the spans received, or rejects after `timeoutMs`. */
  waitFor(predicate: (spans: readonly ReceivedSpan[]) => boolean, timeoutMs?: number): Promise<ReceivedSpan[]>
  close(): Promise<void>
}

export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = []
  const contentTypes: string[] = []
  let notify = (): void => {}
  const server = createServer((req, res) => {
    void body(req).then((bytes) => {
      const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim()
      if (req.method !== 'POST' || req.url !== '/v1/traces') {
        res.writeHead(404).end()
        return
      }
      try {
        spans.push(...(type === 'application/json' ? fromJson(JSON.parse(bytes.toString('utf8'))) : fromProtobuf(bytes)))
        contentTypes.push(type)
      } catch (err) {
        res.writeHead(400, { 'content-type': 'text/plain' }).end(String(err))
        return
      }
      // An empty ExportTraceServiceResponse: "{}" in JSON, no bytes in protobuf.
      if (type === 'application/json') res.writeHead(200, { 'content-type': 'application/json' }).end('{}')
      else res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end()
      notify()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    url: `http://127.0.0.1:${port}`,
    spans,
    contentTypes,
    waitFor(predicate, timeoutMs = 20_000) {
      return new Promise((resolve, reject) => {
        const check = (): boolean => {
          if (!predicate(spans)) return false
          clearTimeout(timer)
          resolve(spans)
          return true
        }
        const timer = setTimeout(() => reject(new Error(`OTLP receiver: condition not met after ${timeoutMs} ms; spans: ${spans.map((s) => s.name).join(', ')}`)), timeoutMs)
        if (!check()) notify = () => void check()
      })
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

function body(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => resolve(Buffer.concat(chunks)))
    req.on('error', reject)
  })
}

// ---- OTLP/JSON (https://opentelemetry.io/docs/specs/otlp/#json-protobuf-encoding) -------

interface JsonKeyValue {
  key: string
  value: JsonAnyValue
}
interface JsonAnyValue {
  stringValue?: string
  boolValue?: boolean
  intValue?: string | number
  doubleValue?: number
  arrayValue?: { values?: JsonAnyValue[] }
}
interface JsonSpan {
  traceId: string
  spanId: string
  parentSpanId?: string
  name: string
  kind?: number
  startTimeUnixNano: string | number
  endTimeUnixNano: string | number
  attributes?: JsonKeyValue[]
  links?: { traceId: string; spanId: string }[]
  status?: { code?: number; message?: string }
}
interface JsonRequest {
  resourceSpans?: { resource?: { attributes?: JsonKeyValue[] }; scopeSpans?: { scope?: { name?: string }; spans?: JsonSpan[] }[] }[]
}

function jsonValue(v: JsonAnyValue): AttributeValue {
  if (v.stringValue !== undefined) return v.stringValue
  if (v.boolValue !== undefined) return v.boolValue
  if (v.intValue !== undefined) return Number(v.intValue)
  if (v.doubleValue !== undefined) return v.doubleValue
  if (v.arrayValue !== undefined) return (v.arrayValue.values ?? []).map(jsonValue)
  throw new Error(`unsupported AnyValue ${JSON.stringify(v)}`)
}

function jsonAttributes(kvs: JsonKeyValue[] | undefined): Record<string, AttributeValue> {
  return Object.fromEntries((kvs ?? []).map((kv) => [kv.key, jsonValue(kv.value)]))
}

function fromJson(request: JsonRequest): ReceivedSpan[] {
  const out: ReceivedSpan[] = []
  for (const rs of request.resourceSpans ?? []) {
    const resource = jsonAttributes(rs.resource?.attributes)
    for (const ss of rs.scopeSpans ?? []) {
      for (const s of ss.spans ?? []) {
        out.push({
          traceId: s.traceId,
          spanId: s.spanId,
          parentSpanId: s.parentSpanId ?? '',
          name: s.name,
          kind: s.kind ?? 0,
          startNs: BigInt(s.startTimeUnixNano),
          endNs: BigInt(s.endTimeUnixNano),
          attributes: jsonAttributes(s.attributes),
          links: (s.links ?? []).map((l) => ({ traceId: l.traceId, spanId: l.spanId })),
          status: { code: s.status?.code ?? 0, message: s.status?.message ?? '' },
          resource,
          scope: ss.scope?.name ?? '',
        })
      }
    }
  }
  return out
}

// ---- OTLP/protobuf: the wire format (https://protobuf.dev/programming-guides/encoding/) ----

/** Each field of a message as [field number, wire type, value]: varints as bigint, LEN as bytes, I64/I32 as their bytes. */
type Field = [number, number, bigint | Buffer]

function fields(buf: Buffer): Field[] {
  const out: Field[] = []
  let pos = 0
  const varint = (): bigint => {
    let result = 0n
    let shift = 0n
    for (;;) {
      if (pos >= buf.length) throw new Error('truncated varint')
      const byte = buf[pos++]!
      result |= BigInt(byte & 0x7f) << shift
      if ((byte & 0x80) === 0) return result
      shift += 7n
    }
  }
  while (pos < buf.length) {
    const tag = Number(varint())
    const field = tag >>> 3
    const wire = tag & 7
    if (wire === 0) out.push([field, wire, varint()])
    else if (wire === 1) {
      out.push([field, wire, buf.subarray(pos, pos + 8)])
      pos += 8
    } else if (wire === 2) {
      const len = Number(varint())
      out.push([field, wire, buf.subarray(pos, pos + len)])
      pos += len
    } else if (wire === 5) {
      out.push([field, wire, buf.subarray(pos, pos + 4)])
      pos += 4
    } else throw new Error(`unsupported wire type ${wire}`)
    if (pos > buf.length) throw new Error('truncated field')
  }
  return out
}

const all = (msg: Field[], n: number): Buffer[] => msg.filter(([f]) => f === n).map(([, , v]) => v as Buffer)
const one = (msg: Field[], n: number): Field[2] | undefined => msg.find(([f]) => f === n)?.[2]
const str = (msg: Field[], n: number): string => ((one(msg, n) as Buffer | undefined) ?? Buffer.alloc(0)).toString('utf8')
const hex = (msg: Field[], n: number): string => ((one(msg, n) as Buffer | undefined) ?? Buffer.alloc(0)).toString('hex')

// AnyValue: 1 string_value, 2 bool_value, 3 int_value, 4 double_value, 5 array_value (ArrayValue: 1 values).
function pbValue(bytes: Buffer): AttributeValue {
  const [[field, , v]] = fields(bytes) as [Field]
  if (field === 1) return (v as Buffer).toString('utf8')
  if (field === 2) return (v as bigint) !== 0n
  if (field === 3) return Number(BigInt.asIntN(64, v as bigint))
  if (field === 4) return (v as Buffer).readDoubleLE(0)
  if (field === 5) return all(fields(v as Buffer), 1).map(pbValue)
  throw new Error(`unsupported AnyValue field ${field}`)
}

// KeyValue: 1 key, 2 value.
function pbAttributes(list: Buffer[]): Record<string, AttributeValue> {
  return Object.fromEntries(list.map((kv) => fields(kv)).map((kv) => [str(kv, 1), pbValue(one(kv, 2) as Buffer)]))
}

// ExportTraceServiceRequest: 1 resource_spans. ResourceSpans: 1 resource (Resource: 1 attributes), 2 scope_spans.
// ScopeSpans: 1 scope (InstrumentationScope: 1 name), 2 spans.
// Span: 1 trace_id, 2 span_id, 4 parent_span_id, 5 name, 6 kind, 7 start_time_unix_nano, 8 end_time_unix_nano,
// 9 attributes, 13 links (Link: 1 trace_id, 2 span_id), 15 status (Status: 2 message, 3 code).
function fromProtobuf(bytes: Buffer): ReceivedSpan[] {
  const out: ReceivedSpan[] = []
  for (const rsBytes of all(fields(bytes), 1)) {
    const rs = fields(rsBytes)
    const resourceBytes = one(rs, 1) as Buffer | undefined
    const resource = resourceBytes ? pbAttributes(all(fields(resourceBytes), 1)) : {}
    for (const ssBytes of all(rs, 2)) {
      const ss = fields(ssBytes)
      const scopeBytes = one(ss, 1) as Buffer | undefined
      const scope = scopeBytes ? str(fields(scopeBytes), 1) : ''
      for (const spanBytes of all(ss, 2)) {
        const s = fields(spanBytes)
        const statusBytes = one(s, 15) as Buffer | undefined
        const status = statusBytes ? fields(statusBytes) : []
        out.push({
          traceId: hex(s, 1),
          spanId: hex(s, 2),
          parentSpanId: hex(s, 4),
          name: str(s, 5),
          kind: Number((one(s, 6) as bigint | undefined) ?? 0n),
          startNs: (one(s, 7) as Buffer).readBigUInt64LE(0),
          endNs: (one(s, 8) as Buffer).readBigUInt64LE(0),
          attributes: pbAttributes(all(s, 9)),
          links: all(s, 13).map((l) => fields(l)).map((l) => ({ traceId: hex(l, 1), spanId: hex(l, 2) })),
          status: { code: Number((one(status, 3) as bigint | undefined) ?? 0n), message: str(status, 2) },
          resource,
          scope,
        })
      }
    }
  }
  return out
}

/** The spans of one trace as an indented tree, children by start time: for failure messages and the docs. */
export function printTree(spans: readonly ReceivedSpan[], traceId: string): string {
  const mine = spans.filter((s) => s.traceId === traceId)
  const ids = new Set(mine.map((s) => s.spanId))
  const children = new Map<string, ReceivedSpan[]>()
  for (const s of mine) {
    const parent = ids.has(s.parentSpanId) ? s.parentSpanId : ''
    children.set(parent, [...(children.get(parent) ?? []), s])
  }
  const t0 = mine.reduce((m, s) => (s.startNs < m ? s.startNs : m), mine[0]?.startNs ?? 0n)
  const ms = (ns: bigint): string => (Number(ns) / 1e6).toFixed(1)
  const lines: string[] = []
  const walk = (parent: string, depth: number): void => {
    for (const s of [...(children.get(parent) ?? [])].sort((a, b) => (a.startNs < b.startNs ? -1 : 1))) {
      const attrs = Object.entries(s.attributes)
        .filter(([k]) => k.startsWith('nima.') || k === 'url.full' || k === 'http.response.status_code' || k === 'http.route')
        .map(([k, v]) => `${k}=${JSON.stringify(v)}`)
        .join(' ')
      lines.push(`${'  '.repeat(depth)}${s.name}  [+${ms(s.startNs - t0)} ms, ${ms(s.endNs - s.startNs)} ms]${attrs ? `  ${attrs}` : ''}`)
      walk(s.spanId, depth + 1)
    }
  }
  walk('', 0)
  return lines.join('\n')
}
