/**
 * src/util/tracing.ts with the seam compiled out, for bench/tracing-ab/build.sh: the same
 * exports, every one doing nothing, so a build with this file in its place is the service
 * as it would be without tracing code on the request path. Only the batch CLI's root
 * spans keep a real (no-op without an SDK) tracer, since the CLI is not what is measured.
 */
import { trace, type Attributes, type Context, type Span } from '@opentelemetry/api'

export { SPAN } from './span-names.js'

export function recordingContext(): Context | undefined {
  return undefined
}

export function traced<T>(_name: string, _attributes: Attributes | (() => Attributes), fn: (span: Span | undefined) => Promise<T>): Promise<T> {
  return fn(undefined)
}

export function startSpan(_name: string, _attributes: Attributes): Span | undefined {
  return undefined
}

export function startRootSpan(name: string, attributes: Attributes): Span {
  return trace.getTracer('nima-serve').startSpan(name, { root: true, attributes })
}

export function withSpan<T>(_span: Span, fn: () => T): T {
  return fn()
}

export function failed(_span: Span, _err: unknown): void {}

export interface TracedItem {
  context: Context
  enqueuedAt: number
}

export function recordBatch(_model: string, _attributes: Attributes, _items: readonly TracedItem[], _startedAt: number, _endedAt: number): void {}

export function activeTraceIds(): { traceresponse: string; trace_id: string; span_id: string } | undefined {
  return undefined
}

export async function shutdownTracing(_timeoutMs = 3000): Promise<void> {}
