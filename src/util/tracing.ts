/**
 * The one place the service makes its own spans (docs/observability.md, "Tracing"): the
 * names and attributes of everything below the HTTP server span that `@fastify/otel` opens
 * and the client spans of `@opentelemetry/instrumentation-undici`.
 *
 * Only `@opentelemetry/api` is imported here. Without an SDK (tracing off, the default: the
 * entries load one only when OTEL_* asks for it, src/tracing/) every call below costs one
 * look-up of the active context and returns; no span object is made. With an SDK, a span is
 * made only under a span that records, so the service's spans follow their request's
 * sampling decision and work done outside any request (warm-up, reloads) makes none.
 */
import { context, trace, SpanStatusCode, type Attributes, type Context, type Span, type TracerProvider } from '@opentelemetry/api'
import { SPAN } from './span-names.js'

export { SPAN }

const tracer = trace.getTracer('nima-serve')

/** The active context, when its span records: what work queued for later keeps, to make its spans there. */
export function recordingContext(): Context | undefined {
  const ctx = context.active()
  return trace.getSpan(ctx)?.isRecording() === true ? ctx : undefined
}

/**
 * Runs `fn` in a child span of the active span (when that records), ends the span when `fn`
 * settles and marks it failed when `fn` throws. `fn` gets the span (undefined when none was
 * made) to add what it learns on the way. `attributes` may be a function, for those that
 * cost something to work out: it is called only when a span is made.
 */
export function traced<T>(name: string, attributes: Attributes | (() => Attributes), fn: (span: Span | undefined) => Promise<T>): Promise<T> {
  const parent = recordingContext()
  if (parent === undefined) return fn(undefined)
  const span = tracer.startSpan(name, { attributes: typeof attributes === 'function' ? attributes() : attributes }, parent)
  let result: Promise<T>
  try {
    result = context.with(trace.setSpan(parent, span), () => fn(span))
  } catch (err) {
    failed(span, err)
    span.end()
    throw err
  }
  return result.then(
    (value) => {
      span.end()
      return value
    },
    (err: unknown) => {
      failed(span, err)
      span.end()
      throw err
    },
  )
}

/**
 * A child span of the active span (when that records) for the caller to end, for an
 * interval that no single function call covers (a wait that ends where another task starts).
 */
export function startSpan(name: string, attributes: Attributes): Span | undefined {
  const parent = recordingContext()
  return parent === undefined ? undefined : tracer.startSpan(name, { attributes }, parent)
}

/** A root span: the batch CLI's chunk (a trace of its own, sampled by the configured sampler). */
export function startRootSpan(name: string, attributes: Attributes): Span {
  return tracer.startSpan(name, { root: true, attributes })
}

/** Runs `fn` with `span` active, so the spans made inside are its children. */
export function withSpan<T>(span: Span, fn: () => T): T {
  if (!span.isRecording()) return fn()
  return context.with(trace.setSpan(context.active(), span), fn)
}

/** Marks `span` failed with `err`'s code (the NimaError code when it has one) and message. */
export function failed(span: Span, err: unknown): void {
  const code = typeof (err as { code?: unknown })?.code === 'string' ? (err as { code: string }).code : err instanceof Error ? err.name : 'error'
  span.setAttribute('error.type', code)
  span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.message : String(err) })
}

/** A queued item of a micro-batch that was traced: its request's context and when it was queued (performance.now()). */
export interface TracedItem {
  context: Context
  enqueuedAt: number
}

/**
 * One batch's spans, made after it ran: a batch serves many requests, so each traced item
 * gets its own `batch wait` (queued → batch start) and `inference <model>` (the run) in its
 * own trace, both carrying the batch size. Times are performance.now() values.
 */
export function recordBatch(model: string, attributes: Attributes, items: readonly TracedItem[], startedAt: number, endedAt: number): void {
  // performance.now() values as they are: the SDK anchors them on the wall clock the way it
  // anchors every span's own times (timeOrigin + now() drifts from Date.now() on a long run).
  for (const item of items) {
    tracer.startSpan(SPAN.batchWait, { attributes: { 'nima.model.id': model, 'nima.batch.size': attributes['nima.batch.size'] }, startTime: item.enqueuedAt }, item.context).end(startedAt)
    tracer.startSpan(`${SPAN.inference} ${model}`, { attributes, startTime: startedAt }, item.context).end(endedAt)
  }
}

/**
 * The W3C Trace Context Level 2 `traceresponse` of the active span (`00-<trace id>-<span
 * id>-<flags>`), and the ids for log lines; undefined when no span is active.
 */
export function activeTraceIds(): { traceresponse: string; trace_id: string; span_id: string } | undefined {
  const span = trace.getActiveSpan()
  if (span === undefined) return undefined
  const { traceId, spanId, traceFlags } = span.spanContext()
  if (!trace.isSpanContextValid(span.spanContext())) return undefined
  return { traceresponse: `00-${traceId}-${spanId}-${traceFlags.toString(16).padStart(2, '0')}`, trace_id: traceId, span_id: spanId }
}

/**
 * Exports the spans still buffered and stops the SDK, if one was started (src/tracing/),
 * waiting at most `timeoutMs`: a collector that does not answer must not hold up an exit.
 */
export async function shutdownTracing(timeoutMs = 3000): Promise<void> {
  const provider = trace.getTracerProvider() as TracerProvider & { getDelegate?(): TracerProvider }
  const sdk = provider.getDelegate?.() as { shutdown?(): Promise<void> } | undefined
  if (typeof sdk?.shutdown !== 'function') return
  let timer: NodeJS.Timeout | undefined
  await Promise.race([sdk.shutdown().catch(() => {}), new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs).unref()))])
  clearTimeout(timer)
}
