import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { ScoringObserver } from '../scoring/observer.js'
import { BYPASS_REASONS } from '../cache/redis-store.js'
import type { CacheObserver } from '../cache/tiered-cache.js'
import { ScoreWindows } from '../calibration/score-windows.js'

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
  inflightImages: Gauge<'model'>
  decodeQueueDepth: Gauge<never>
  decodesRunning: Gauge<never>
  decodeMemoryReservedBytes: Gauge<never>
  decodeProcessTimeouts: Counter<never>
  decodeProcessCrashes: Counter<never>
  modelInfo: Gauge<'model' | 'version' | 'synthetic' | 'provider' | 'task'>
  providerFallbacks: Counter<'model' | 'provider'>
  modelReloads: Counter<'outcome'>
  ready: Gauge<never>
  abandoned: Counter<'stage'>
  cacheLookups: Counter<'layer' | 'result'>
  cacheBypasses: Counter<'reason'>
  cacheRevalidations: Counter<'outcome'>
  cacheUpstreamBytesSaved: Counter<never>
  cacheMemoryBytes: Gauge<never>
  cacheMemoryEntries: Gauge<never>
  cacheRedisUp: Gauge<never>
  scoreMean: Histogram<'model'>
  scoreDrift: Gauge<'model'>
  /** The last SCORE_DRIFT_WINDOW served means per model: nima_score_drift is computed from them at scrape time. */
  scoreWindows: ScoreWindows
}

/** Where work stood when its client went away: its body still arriving, a URL fetch, waiting for a decode slot, waiting for inference. */
export const ABANDON_STAGES = ['upload', 'fetch', 'decode', 'queue'] as const
export type AbandonStage = (typeof ABANDON_STAGES)[number]

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]

/**
 * Mean scores (1..10): NIMA's means crowd into 4–7 (idealo's issues #50 and #75), so the
 * buckets are a quarter point apart there and wider outside.
 */
export const SCORE_MEAN_BUCKETS = [2, 3, 3.5, 4, 4.25, 4.5, 4.75, 5, 5.25, 5.5, 5.75, 6, 6.25, 6.5, 6.75, 7, 7.5, 8, 9]

export interface MetricsOptions {
  /** Served means per model the drift gauge compares with the calibration (SCORE_DRIFT_WINDOW). Default 500. */
  driftWindow?: number
}

export function createMetrics(options: MetricsOptions = {}): Metrics {
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
      help: 'Scoring requests in flight, from their headers on (an upload still arriving counts)',
      registers,
    }),
    uploadReservedBytes: new Gauge({
      name: 'nima_upload_reserved_bytes',
      help: 'Bytes reserved by request bodies in flight (declared Content-Length; BODY_LIMIT_BYTES when chunked): the most they can buffer, at most UPLOAD_BUDGET_BYTES',
      registers,
    }),
    queueDepth: new Gauge({
      name: 'nima_queue_depth',
      help: 'Images waiting for inference, by model: for admission (PIPELINE_MAX_IMAGES) and in the model\'s batch queue',
      labelNames: ['model'],
      registers,
    }),
    inflightImages: new Gauge({
      name: 'nima_inflight_images',
      help: 'Images in a running session.run, by model',
      labelNames: ['model'],
      registers,
    }),
    decodeQueueDepth: new Gauge({
      name: 'nima_decode_queue_depth',
      help: 'Images waiting for a decode slot (DECODE_CONCURRENCY) or for room in DECODE_MEMORY_BUDGET_BYTES',
      registers,
    }),
    decodesRunning: new Gauge({
      name: 'nima_decodes_running',
      help: 'Decodes in progress (in the server or in a decode process)',
      registers,
    }),
    decodeMemoryReservedBytes: new Gauge({
      name: 'nima_decode_memory_reserved_bytes',
      help: 'Estimated bytes held by the decodes in flight, at most DECODE_MEMORY_BUDGET_BYTES',
      registers,
    }),
    decodeProcessTimeouts: new Counter({
      name: 'nima_decode_timeouts_total',
      help: 'Decodes killed past DECODE_TIMEOUT_MS (their decode process replaced)',
      registers,
    }),
    decodeProcessCrashes: new Counter({
      name: 'nima_decode_process_crashes_total',
      help: 'Decode processes that died during a decode (replaced)',
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
    modelReloads: new Counter({
      name: 'nima_model_reloads_total',
      help: 'Model reloads (SIGHUP or POST /admin/models/reload) by outcome: reloaded, unchanged, failed (the previous models kept serving)',
      labelNames: ['outcome'],
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
    cacheLookups: zeroedBy(
      new Counter({
        name: 'nima_cache_lookups_total',
        help: 'Score-cache entries looked up (an image\'s info, one score per model, a URL record), by layer (memory, redis) and result (hit, miss); Redis is asked only for what memory lacked',
        labelNames: ['layer', 'result'],
        registers,
      }),
      ['memory', 'redis'].flatMap((layer) => ['hit', 'miss'].map((result) => ({ layer, result }))),
    ),
    cacheBypasses: zeroedBy(
      new Counter({
        name: 'nima_cache_bypasses_total',
        help: 'Redis operations skipped or given up, the request going on without the cache, by reason: unavailable (not connected), timeout (CACHE_TIMEOUT_MS), error, busy (too many commands outstanding), too_large (CACHE_MAX_VALUE_BYTES)',
        labelNames: ['reason'],
        registers,
      }),
      BYPASS_REASONS.map((reason) => ({ reason })),
    ),
    cacheRevalidations: zeroedBy(
      new Counter({
        name: 'nima_cache_revalidations_total',
        help: 'URL inputs whose scores were cached, by outcome: fresh (within max-age, no request), not_modified (the upstream answered 304), modified (a new body, scored again), failed (the conditional request failed)',
        labelNames: ['outcome'],
        registers,
      }),
      ['fresh', 'not_modified', 'modified', 'failed'].map((outcome) => ({ outcome })),
    ),
    cacheUpstreamBytesSaved: new Counter({
      name: 'nima_cache_upstream_bytes_saved_total',
      help: 'Image body bytes not downloaded because the upstream answered 304 or max-age still held',
      registers,
    }),
    cacheMemoryBytes: new Gauge({
      name: 'nima_cache_memory_bytes',
      help: 'Bytes charged to the in-process score cache, at most SCORE_CACHE_MAX_BYTES',
      registers,
    }),
    cacheMemoryEntries: new Gauge({
      name: 'nima_cache_memory_entries',
      help: 'Entries in the in-process score cache',
      registers,
    }),
    cacheRedisUp: new Gauge({
      name: 'nima_cache_redis_up',
      help: '1 when the shared Redis (CACHE_URL) is connected and ready; 0 when it is not (requests bypass it) or none is configured',
      registers,
    }),
    scoreMean: new Histogram({
      name: 'nima_score_mean',
      help: 'Mean score (1..10) served to clients, by model: fresh and cached alike, once per distinct image and request',
      labelNames: ['model'],
      buckets: SCORE_MEAN_BUCKETS,
      registers,
    }),
    scoreDrift: new Gauge({
      name: 'nima_score_drift',
      help: 'Kolmogorov–Smirnov statistic (0..1) between the last SCORE_DRIFT_WINDOW means served by a model and its calibration catalogue (SCORE_CALIBRATION); present once the window is full, for calibrated models only',
      labelNames: ['model'],
      registers,
    }),
    scoreWindows: new ScoreWindows(options.driftWindow ?? 500),
  }
}

/** Every label combination's series from the start, so rate() sees the first event. */
function zeroedBy<L extends string>(counter: Counter<L>, labelSets: readonly Partial<Record<L, string>>[]): Counter<L> {
  for (const labels of labelSets) counter.inc(labels, 0)
  return counter
}

/** The score cache's events as metrics (its sizes are read at scrape time, metrics-plugin.ts). */
export function cacheObserver(metrics: Metrics): Required<CacheObserver> {
  return {
    lookup(layer, hits, misses) {
      if (hits > 0) metrics.cacheLookups.inc({ layer, result: 'hit' }, hits)
      if (misses > 0) metrics.cacheLookups.inc({ layer, result: 'miss' }, misses)
    },
    bypass(reason) {
      metrics.cacheBypasses.inc({ reason })
    },
    revalidated(outcome, bytesSaved) {
      metrics.cacheRevalidations.inc({ outcome })
      if (bytesSaved > 0) metrics.cacheUpstreamBytesSaved.inc(bytesSaved)
    },
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

/**
 * Scoring's events as Prometheus metrics: decode durations, and per batch its size, each
 * image's wait, the session.run time and the images scored; provider fallbacks as models
 * load; each served mean into its histogram and its model's drift window. Drops are left to the caller (only client-gone ones count as abandoned).
 */
export function scoringObserver(metrics: Metrics): Required<Omit<ScoringObserver, 'dropped'>> {
  return {
    loaded(model, fallbacks) {
      for (const f of fallbacks) metrics.providerFallbacks.inc({ model: model.id, provider: f.provider })
    },
    decoded(format, seconds) {
      metrics.decodeDuration.observe({ format }, seconds)
    },
    batch(model, size, waits, runSeconds) {
      metrics.inferenceDuration.observe({ model: model.id, version: model.version, synthetic: String(model.synthetic), provider: model.provider }, runSeconds)
      metrics.batchSize.observe({ model: model.id }, size)
      for (const w of waits) metrics.queueWait.observe({ model: model.id }, w)
      metrics.imagesScored.inc({ model: model.id, version: model.version, synthetic: String(model.synthetic) }, size)
    },
    served(model, sha256, mean) {
      metrics.scoreMean.observe({ model: model.id }, mean)
      metrics.scoreWindows.push(model.id, sha256, mean)
    },
  }
}
