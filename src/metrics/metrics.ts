import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'

/**
 * All Prometheus metrics of one service instance, on a registry of its own (no global
 * state: two apps in one process, as in tests, do not collide). Names use the nima_
 * prefix and base units (seconds, bytes).
 */
export interface Metrics {
  registry: Registry
  httpDuration: Histogram<'route' | 'method' | 'status_code'>
  inferenceDuration: Histogram<'model' | 'version' | 'synthetic' | 'provider'>
  batchSize: Histogram<'model'>
  queueWait: Histogram<'model'>
  imagesScored: Counter<'model' | 'version' | 'synthetic'>
  decodeDuration: Histogram<'format'>
  fetchDuration: Histogram<'outcome'>
  fetchBytes: Histogram<never>
  errors: Counter<'code'>
  inflightRequests: Gauge<never>
  uploadReservedBytes: Gauge<never>
  queueDepth: Gauge<'model'>
  modelInfo: Gauge<'model' | 'version' | 'synthetic' | 'provider' | 'task'>
  providerFallbacks: Counter<'model' | 'provider'>
  ready: Gauge<never>
  abandoned: Counter<'stage'>
}

/** Where work stood when its client went away: its body still arriving, a URL fetch, waiting for a decode slot, waiting for inference. */
export const ABANDON_STAGES = ['upload', 'fetch', 'decode', 'queue'] as const
export type AbandonStage = (typeof ABANDON_STAGES)[number]

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]

export function createMetrics(): Metrics {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry, prefix: 'nima_' })
  const registers = [registry]
  return {
    registry,
    httpDuration: new Histogram({
      name: 'nima_http_request_duration_seconds',
      help: 'HTTP request duration by route template, method and status code',
      labelNames: ['route', 'method', 'status_code'],
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    inferenceDuration: new Histogram({
      name: 'nima_inference_duration_seconds',
      help: 'Duration of one session.run (one batch) by model',
      labelNames: ['model', 'version', 'synthetic', 'provider'],
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    batchSize: new Histogram({
      name: 'nima_batch_size',
      help: 'Images per session.run',
      labelNames: ['model'],
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
      registers,
    }),
    queueWait: new Histogram({
      name: 'nima_queue_wait_seconds',
      help: 'Time an image waited for its batch to start',
      labelNames: ['model'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5],
      registers,
    }),
    imagesScored: new Counter({
      name: 'nima_images_scored_total',
      help: 'Images scored, by model',
      labelNames: ['model', 'version', 'synthetic'],
      registers,
    }),
    decodeDuration: new Histogram({
      name: 'nima_decode_duration_seconds',
      help: 'Image decode and preprocessing duration by detected format',
      labelNames: ['format'],
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    fetchDuration: new Histogram({
      name: 'nima_fetch_duration_seconds',
      help: 'URL fetch duration by outcome (ok or an error code)',
      labelNames: ['outcome'],
      buckets: LATENCY_BUCKETS,
      registers,
    }),
    fetchBytes: new Histogram({
      name: 'nima_fetch_bytes',
      help: 'Bytes of images fetched from URLs',
      buckets: [1e4, 5e4, 1e5, 2.5e5, 5e5, 1e6, 2.5e6, 5e6, 1e7, 2e7],
      registers,
    }),
    errors: new Counter({
      name: 'nima_errors_total',
      help: 'Errors returned to clients (per request or per failed /rank image), by code',
      labelNames: ['code'],
      registers,
    }),
    inflightRequests: new Gauge({
      name: 'nima_inflight_requests',
      help: 'Scoring requests being processed',
      registers,
    }),
    uploadReservedBytes: new Gauge({
      name: 'nima_upload_reserved_bytes',
      help: 'Bytes reserved by request bodies in flight (declared Content-Length; BODY_LIMIT_BYTES when chunked): the most they can buffer, at most UPLOAD_BUDGET_BYTES',
      registers,
    }),
    queueDepth: new Gauge({
      name: 'nima_queue_depth',
      help: 'Images waiting for inference, by model',
      labelNames: ['model'],
      registers,
    }),
    modelInfo: new Gauge({
      name: 'nima_model_info',
      help: 'Loaded models (value 1); synthetic="true" means seeded random weights',
      labelNames: ['model', 'version', 'synthetic', 'provider', 'task'],
      registers,
    }),
    providerFallbacks: new Counter({
      name: 'nima_execution_provider_fallbacks_total',
      help: 'Execution providers that failed to load and were skipped',
      labelNames: ['model', 'provider'],
      registers,
    }),
    ready: new Gauge({
      name: 'nima_ready',
      help: '1 when models are loaded and warmed up and the service is not draining',
      registers,
    }),
    abandoned: zeroed(
      new Counter({
        name: 'nima_abandoned_total',
        help: 'Work dropped because the client went away first, by stage: upload (requests whose body had not all arrived), fetch, decode, queue (images)',
        labelNames: ['stage'],
        registers,
      }),
    ),
  }
}

/** Every stage's series from the start, so rate() sees the first drop. */
function zeroed(counter: Counter<'stage'>): Counter<'stage'> {
  for (const stage of ABANDON_STAGES) counter.inc({ stage }, 0)
  return counter
}

/** Records finished URL fetches (an ImageSource's `onFetch`). */
export function fetchObserver(metrics: Pick<Metrics, 'fetchDuration' | 'fetchBytes'>): (o: { outcome: string; ms: number; bytes?: number }) => void {
  return ({ outcome, ms, bytes }) => {
    metrics.fetchDuration.observe({ outcome }, ms / 1000)
    if (bytes !== undefined) metrics.fetchBytes.observe(bytes)
  }
}
