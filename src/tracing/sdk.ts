/**
 * The OpenTelemetry SDK, loaded by a process entry only when src/tracing/settings.ts says
 * tracing is on (src/main.cts, src/main.ts, the batch command): with tracing off, none of
 * this is ever imported.
 *
 * No module is patched: `@fastify/otel` hooks every fastify instance through the
 * `fastify.initialization` diagnostics channel and `@opentelemetry/instrumentation-undici`
 * listens on undici's channels, so neither needs a loader hook (`--import`) and neither
 * depends on import order the way require-in-the-middle instrumentations do. They must
 * only be subscribed before the first fastify instance is built and the first image is
 * fetched; the entries start this first all the same.
 *
 * The spans below the server span are the service's own (src/util/tracing.ts).
 */
import { createRequire } from 'node:module'
import { FastifyOtelInstrumentation } from '@fastify/otel'
import { diag, DiagLogLevel, type DiagLogFunction } from '@opentelemetry/api'
import { registerInstrumentations } from '@opentelemetry/instrumentation'
import { UndiciInstrumentation, type UndiciRequest } from '@opentelemetry/instrumentation-undici'
import { OTLPTraceExporter as OtlpJsonExporter } from '@opentelemetry/exporter-trace-otlp-http'
import { OTLPTraceExporter as OtlpProtobufExporter } from '@opentelemetry/exporter-trace-otlp-proto'
import { defaultResource, detectResources, envDetector, resourceFromAttributes } from '@opentelemetry/resources'
import { BatchSpanProcessor, NodeTracerProvider } from '@opentelemetry/sdk-trace-node'
import type { FastifyRequest } from 'fastify'
import { pino } from 'pino'
import { redactUrl } from '../fetching/redact-url.js'
import type { TracingSettings } from './settings.js'

/** Routes polled by probes and Prometheus every few seconds: a trace each would drown the rest. */
const UNTRACED_ROUTES: ReadonlySet<string> = new Set(['/healthz', '/readyz', '/metrics'])

/** At most one log line per interval about the SDK's own trouble (a collector down fails every export). */
const SDK_WARN_INTERVAL_MS = 60_000

/** What the caller gets back: stop exporting, after the buffered spans are sent. */
export type StopTracing = () => Promise<void>

/**
 * Registers the global tracer provider (AsyncLocalStorage context, W3C trace context and
 * baggage propagation), its OTLP exporter and the two instrumentations. The sampler
 * (OTEL_TRACES_SAMPLER, _ARG; default parentbased_always_on), the endpoint, headers,
 * timeout and compression (OTEL_EXPORTER_OTLP_*) and the batch processor's limits
 * (OTEL_BSP_*) are read from the environment by the SDK itself.
 */
export function startTracing(settings: TracingSettings): StopTracing {
  reportSdkTrouble()
  const exporter = settings.protocol === 'http/json' ? new OtlpJsonExporter() : new OtlpProtobufExporter()
  const provider = new NodeTracerProvider({
    // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES (envDetector) win over ours.
    resource: defaultResource()
      .merge(resourceFromAttributes({ 'service.name': 'nima-serve', 'service.version': packageVersion() }))
      .merge(detectResources({ detectors: [envDetector] })),
    spanProcessors: [new BatchSpanProcessor(exporter)],
  })
  provider.register()
  const unregister = registerInstrumentations({
    tracerProvider: provider,
    instrumentations: [
      new FastifyOtelInstrumentation({
        registerOnInitialization: true,
        // One server span per request, and one for its handler; a span per hook (eight
        // hooks here, each a few microseconds) would bury the ones that matter.
        instrumentHooks: false,
        ignorePaths: (route: { url?: string }) => UNTRACED_ROUTES.has((route.url ?? '').split('?')[0]!),
        // "handler /rank" rather than the plugin chain's name ("handler - rankRoute -> @fastify/multipart").
        lifecycleHook: (span, { hookName, request }) => span.updateName(`${hookName} ${request.routeOptions.url ?? ''}`.trim()),
        requestHook: (span, request: FastifyRequest) => {
          const route = request.routeOptions.url
          span.updateName(route === undefined ? request.method : `${request.method} ${route}`)
          // Fastify's url carries the query string; the access log never shows it, nor do traces.
          span.setAttributes({ 'url.path': request.url.split('?')[0]!, 'nima.request_id': request.id })
        },
      }),
      new UndiciInstrumentation({
        // Spans only inside a trace (a request's or a batch chunk's).
        requireParentforSpans: true,
        startSpanHook: upstreamAttributes,
      }),
    ],
  })
  return async () => {
    unregister()
    await provider.shutdown()
  }
}

/**
 * The fetcher dials the checked IP address with the name in the Host header
 * (src/fetching/fetch-image.ts), so undici's own `url.full` would name the address and
 * carry the query string, where signed image URLs keep their credentials. Here: the URL
 * as the logs show it (redactUrl: no query, no userinfo), and no `url.query` at all.
 * `server.address` stays the address actually dialled.
 */
function upstreamAttributes(request: UndiciRequest): Record<string, string | undefined> {
  const origin = new URL(request.origin)
  // undici keeps a Host header apart from the others, as `host`.
  const host = (request as UndiciRequest & { host?: string | null }).host ?? origin.host
  return { 'url.full': redactUrl(`${origin.protocol}//${host}${request.path}`), 'url.query': undefined }
}

/**
 * The SDK reports failed exports and bad settings through its diag logger, silent unless one
 * is set. Here: a JSON line on stdout like the service's own, at most one per
 * SDK_WARN_INTERVAL_MS with the number left out since, so a collector that is down is
 * noticed without a line per export.
 */
function reportSdkTrouble(): void {
  const log = pino({ level: 'warn', base: { pid: process.pid, component: 'opentelemetry' } })
  let last = Number.NEGATIVE_INFINITY
  let suppressed = 0
  const report =
    (level: 'warn' | 'error'): DiagLogFunction =>
    (message, ...args) => {
      const now = Date.now()
      if (now - last < SDK_WARN_INTERVAL_MS) {
        suppressed += 1
        return
      }
      const detail = args.map((a) => (a instanceof Error ? a.message : String(a))).join(' ')
      log[level]({ suppressedSinceLast: suppressed, ...(detail !== '' ? { detail: detail.slice(0, 500) } : {}) }, `tracing: ${readable(message)}`)
      last = now
      suppressed = 0
    }
  const quiet: DiagLogFunction = () => {}
  diag.setLogger({ error: report('error'), warn: report('warn'), info: quiet, debug: quiet, verbose: quiet }, { logLevel: DiagLogLevel.WARN, suppressOverrideMessage: true })
}

/** The SDK hands failed exports over as the error serialised to JSON: its message is what a reader needs. */
function readable(message: string): string {
  try {
    const parsed = JSON.parse(message) as { message?: unknown }
    return typeof parsed.message === 'string' ? parsed.message : message
  } catch {
    return message
  }
}

function packageVersion(): string {
  // package.json is two folders up from both src/tracing and dist/tracing.
  return (createRequire(import.meta.url)('../../package.json') as { version: string }).version
}
