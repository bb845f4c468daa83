import { Type, type Static } from '@sinclair/typebox'

/**
 * Every environment variable the service reads, with its type, default and doc.
 * This table is the single source for validation, the typed config and the table in
 * docs/configuration.md (test/unit/config.test.ts keeps that page in step).
 */
export const ConfigSchema = Type.Object({
  HOST: Type.String({ default: '0.0.0.0', description: 'Interface to listen on' }),
  PORT: Type.Integer({ default: 8080, minimum: 0, maximum: 65535, description: 'TCP port (0 picks a free one)' }),
  LOG_LEVEL: Type.Union(
    ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
    { default: 'info', description: 'pino log level' },
  ),
  MODELS_DIR: Type.String({ default: 'models', description: 'Folder holding <id>/<version>/manifest.json + model.onnx' }),
  MODELS: Type.String({
    default: 'aesthetic,technical',
    pattern: '^[a-z][a-z0-9-]*(,[a-z][a-z0-9-]*)*$',
    description: 'Model ids to load; the first two are the default for requests',
  }),
  EXECUTION_PROVIDERS: Type.String({
    default: 'cpu',
    pattern: '^(cpu|cuda|webgpu)(,(cpu|cuda|webgpu))*$',
    description: 'ONNX Runtime execution providers in order of preference; unavailable ones fall back with a warning',
  }),
  CPU_LIMIT: Type.Number({
    default: 0,
    minimum: 0,
    maximum: 1024,
    description: 'CPUs the service may use, rounded up and capped by the available parallelism (0: the cgroup quota, cpu.max or cpu.cfs_quota_us); the Kubernetes Deployment passes limits.cpu',
  }),
  CGROUP_ROOT: Type.String({ default: '/sys/fs/cgroup', description: 'Where the cgroup filesystem is mounted, read once at start-up for the CPU quota' }),
  UV_THREADPOOL_SIZE: Type.Integer({
    default: 0,
    minimum: 0,
    maximum: 1024,
    description: 'libuv pool threads (sharp decodes, file reads, DNS lookups); 0: decode slots + 2, at least 4. Applied only when started through dist/main.cjs (npm start, the images)',
  }),
  INFERENCE_THREAD: Type.Union([Type.Literal('worker'), Type.Literal('main')], {
    default: 'worker',
    description:
      'worker: each model\'s ONNX Runtime session runs on a worker thread of its own, so inference never blocks the event loop and the models run at once; main: on the event loop (the old way, kept for comparison benchmarks)',
  }),
  GC_INCREMENTAL_MARKING: Type.Boolean({
    default: false,
    description:
      "V8's incremental and concurrent marking. Off (the default), a full collection marks the heap in one pause (15–45 ms measured on 2 cores, every few seconds under load) when the old generation is full; on, once requests queued the main isolate fell into a full collection every 150–250 ms, which cost 8–15 % of the CPU per image (docs/performance.md)",
  }),
  ORT_INTRA_OP_THREADS: Type.Integer({ default: 0, minimum: 0, maximum: 256, description: 'Threads per operator in each session (0: the CPU budget shared out among the models when INFERENCE_THREAD=worker, the whole budget when main; see CPU_LIMIT)' }),
  ORT_INTER_OP_THREADS: Type.Integer({ default: 1, minimum: 0, maximum: 256, description: 'Threads across operators' }),
  ORT_ALLOW_SPINNING: Type.Boolean({
    default: false,
    description: 'Let ONNX Runtime pool threads spin between operators; off halves CPU per image when decoding and two sessions share the cores (bench/RESULTS.md)',
  }),
  MODEL_PRECISION: Type.Union([Type.Literal('float32'), Type.Literal('float16')], {
    default: 'float32',
    description:
      'float16 serves the <version>-fp16 variant made from each float32 model by `nima-serve models fp16` (for cuda/webgpu); a model without one serves float32 with a warning',
  }),
  DECODE_CONCURRENCY: Type.Integer({
    default: 0,
    minimum: 0,
    maximum: 256,
    description: 'Images decoded and preprocessed at once, the others wait in arrival order (0: the CPU budget, see CPU_LIMIT)',
  }),
  PREPROCESS: Type.Union([Type.Literal('exact'), Type.Literal('fast')], {
    default: 'exact',
    description:
      "exact: the full decode and the Keras nearest-neighbour rule, pixel for pixel (scores comparable with the published models); fast: where the decoder can shrink on load (JPEG DCT scaling from about 3 MP up, WebP), to the smallest size covering twice the model input, then the same nearest rule: much less decode on large photos, slightly different scores (measure with `nima-serve models check-preprocess`); elsewhere the same pixels as exact. Responses say which (`image.preprocess`); the score cache keeps the two apart",
  }),
  DECODE_ISOLATION: Type.Union([Type.Literal('process'), Type.Literal('inline')], {
    default: 'process',
    description:
      'process: each decode runs in one of DECODE_CONCURRENCY child processes, killed and replaced past DECODE_TIMEOUT_MS; inline: in the server process, unstoppable (kept for comparison benchmarks)',
  }),
  DECODE_INLINE_MAX_PIXELS: Type.Integer({
    default: 2_000_000,
    minimum: 0,
    description:
      'process isolation: JPEG and PNG images whose decode makes at most this many pixels (the photo; under PREPROCESS=fast a baseline JPEG\'s DCT-scaled image) decode in the server process (cost bounded by pixels and JPEG_MAX_SCANS; the round trip would cost more than the decode); 0 sends every image to a decode process',
  }),
  DECODE_TIMEOUT_MS: Type.Integer({
    default: 5000,
    minimum: 50,
    description: 'Longest one decode may run (process isolation) before its process is killed and the image refused with 422 NIMA_DECODE_TIMEOUT',
  }),
  DECODE_MEMORY_BUDGET_BYTES: Type.Integer({
    default: 768 * 1024 * 1024,
    minimum: 1024 * 1024,
    description: 'Estimated bytes all decodes in flight may hold together (estimate from the header); more wait in arrival order, and an image estimated above it alone gets 413',
  }),
  JPEG_MAX_SCANS: Type.Integer({
    default: 100,
    minimum: 1,
    description: 'Most scans (SOS segments) in one JPEG, counted from the bytes before decoding; more get 422 NIMA_TOO_MANY_SCANS',
  }),
  BATCH_MAX_SIZE: Type.Integer({ default: 4, minimum: 1, maximum: 256, description: 'Most images in one session.run' }),
  BATCH_MAX_WAIT_MS: Type.Number({ default: 2, minimum: 0, maximum: 1000, description: 'Longest a lone image waits for company' }),
  PIPELINE_MAX_IMAGES: Type.Integer({
    default: 0,
    minimum: 0,
    maximum: 65536,
    description:
      'Ordinary photos (within DECODE_INLINE_MAX_PIXELS) being decoded, waiting for a batch or inferred at once; later ones wait in arrival order as their compressed bytes (0: 2 × BATCH_MAX_SIZE, at least BATCH_MAX_SIZE + decode slots). Larger images are paced by DECODE_MEMORY_BUDGET_BYTES and the decode slots',
  }),
  QUEUE_MAX: Type.Integer({ default: 256, minimum: 1, description: 'Images waiting to be scored (beyond PIPELINE_MAX_IMAGES) before new ones get 503' }),
  REQUEST_DEADLINE_MS: Type.Integer({ default: 30000, minimum: 100, description: 'Per-request deadline for scoring' }),
  BODY_LIMIT_BYTES: Type.Integer({ default: 20 * 1024 * 1024, minimum: 1024, description: 'Largest upload (raw or multipart); for OIP /v2 inference, the largest JSON part and the largest encoded image' }),
  BODY_TIMEOUT_MS: Type.Integer({
    default: 30000,
    minimum: 100,
    description: 'Time a client has to send a whole request, headers and body; past it 408 NIMA_REQUEST_TIMEOUT and the connection closes (Node checks every BODY_TIMEOUT_MS/4 or every second, whichever is more often)',
  }),
  UPLOAD_BUDGET_BYTES: Type.Integer({
    default: 256 * 1024 * 1024,
    minimum: 1024,
    description: 'Bytes all request bodies in flight may hold together, counted up front from Content-Length (chunked bodies count as BODY_LIMIT_BYTES); a request past it gets 503 NIMA_OVERLOADED before its body is read. A multipart POST /rank or an OIP /v2 inference reserves up to RANK_UPLOAD_MAX_BYTES. At least BODY_LIMIT_BYTES and RANK_UPLOAD_MAX_BYTES',
  }),
  MAX_INPUT_PIXELS: Type.Integer({ default: 64_000_000, minimum: 1, description: 'Largest decoded image (width x height); bombs are refused before decoding' }),
  URL_MAX_BYTES: Type.Integer({ default: 20 * 1024 * 1024, minimum: 1024, description: 'Largest image body fetched from a URL' }),
  URL_CONNECT_TIMEOUT_MS: Type.Integer({ default: 3000, minimum: 1, description: 'URL fetch: TCP/TLS connect timeout' }),
  URL_HEADERS_TIMEOUT_MS: Type.Integer({ default: 5000, minimum: 1, description: 'URL fetch: time to response headers' }),
  URL_BODY_TIMEOUT_MS: Type.Integer({ default: 15000, minimum: 1, description: 'URL fetch: time for the whole body' }),
  URL_MAX_REDIRECTS: Type.Integer({ default: 3, minimum: 0, maximum: 20, description: 'Redirects followed (each hop re-checked)' }),
  URL_ALLOWLIST: Type.String({ default: '', description: 'Comma-separated hosts (exact or *.suffix) or CIDRs allowed despite the private-address deny list' }),
  RANK_MAX_IMAGES: Type.Integer({ default: 100, minimum: 1, maximum: 10000, description: 'Most images in one POST /rank, and in one OIP /v2 inference' }),
  RANK_UPLOAD_MAX_BYTES: Type.Integer({
    default: 100 * 1024 * 1024,
    minimum: 1024,
    description: 'Largest total of the image parts of one multipart POST /rank, and largest body of one OIP /v2 inference (each image is also limited by BODY_LIMIT_BYTES); all are held in memory while scored',
  }),
  RANK_FETCH_CONCURRENCY: Type.Integer({ default: 8, minimum: 1, maximum: 256, description: 'Parallel URL fetches per /rank request; also the images of one /rank upload or OIP /v2 inference in the scorer at once' }),
  RANK_PER_HOST_CONCURRENCY: Type.Integer({ default: 4, minimum: 1, maximum: 256, description: 'Parallel fetches to one host, across all requests' }),
  SCORE_CACHE: Type.Union([Type.Literal('on'), Type.Literal('off')], {
    default: 'on',
    description: 'on: each image\'s scores (by sha256 and model fingerprint) and each URL\'s validators are cached (docs/cache.md); off: every request decodes and infers',
  }),
  SCORE_CACHE_MAX_BYTES: Type.Integer({
    default: 64 * 1024 * 1024,
    minimum: 0,
    description: 'Bound of the in-process score cache, least recently used entries evicted first (about 3 KB per URL image with two models: some 22,000 images in the default); 0: no in-process layer',
  }),
  CACHE_URL: Type.String({
    default: '',
    pattern: '^(rediss?://.*)?$',
    description: 'redis:// or rediss:// URL of a Redis shared by all instances, behind the in-process cache; empty: in-process only',
  }),
  CACHE_TIMEOUT_MS: Type.Integer({
    default: 50,
    minimum: 1,
    maximum: 10000,
    description: 'Longest one Redis operation may take; past it, or on any Redis error, the request goes on without the cache (nima_cache_bypasses_total)',
  }),
  CACHE_TTL_SECONDS: Type.Integer({ default: 7 * 24 * 3600, minimum: 1, description: 'Time to live of every entry written to Redis' }),
  CACHE_MAX_VALUE_BYTES: Type.Integer({ default: 16 * 1024, minimum: 256, maximum: 1024 * 1024, description: 'Largest value written to or accepted from Redis' }),
  CACHE_WARN_INTERVAL_MS: Type.Integer({ default: 60000, minimum: 0, description: 'At most one warning per interval while Redis is bypassed (the count since the last one included)' }),
  COMBINED_WEIGHTS: Type.String({
    default: 'aesthetic=0.6,technical=0.4',
    pattern: '^[a-z][a-z0-9-]*=[0-9.]+(,[a-z][a-z0-9-]*=[0-9.]+)*$',
    description: 'Default weight of each model (by id or task) in the combined score',
  }),
  SCORE_CALIBRATION: Type.String({
    default: '',
    description:
      'Calibration file written by `nima-serve calibrate` (docs/calibration.md): responses and batch lines gain percentiles against that catalogue, and rater-scale values when it was fitted to labels. Read at start and on every model reload; refused when it matches none of the loaded model files. Empty: off',
  }),
  SCORE_DRIFT_WINDOW: Type.Integer({
    default: 500,
    minimum: 1,
    maximum: 100_000,
    description:
      'Served scores per model that nima_score_drift compares with the calibration (Kolmogorov–Smirnov); the gauge appears once the window is full. Below a few hundred it is noisy (about 0.87/√n on average with no drift at all)',
  }),
  API_KEYS: Type.String({ default: '', description: 'Comma-separated bearer tokens; when set, /score, /rank and /models need `Authorization: Bearer <key>` (probes and /metrics stay open)' }),
  CORS_ORIGINS: Type.String({
    default: '',
    pattern: '^(|\\*|https?://[^,/\\s]+(,https?://[^,/\\s]+)*)$',
    description:
      'Comma-separated origins (scheme://host[:port]) whose browser pages may call the API, or * for any; empty (default) sends no CORS headers, so only same-origin pages (/gallery, /label, /docs) can',
  }),
  RATE_LIMIT_MAX: Type.Integer({ default: 0, minimum: 0, description: 'Requests per client IP (or API key) per window on /score and /rank; 0 turns rate limiting off' }),
  RATE_LIMIT_WINDOW_MS: Type.Integer({ default: 60000, minimum: 1000, description: 'Rate-limit window' }),
  LABELS_DB: Type.String({ default: '', description: 'SQLite file of the labelling API and page (/labels/*, /label); empty turns them off; :memory: keeps labels in memory only' }),
  SHUTDOWN_GRACE_MS: Type.Integer({ default: 10000, minimum: 0, description: 'On SIGTERM, how long in-flight requests may finish' }),
})

export type RawConfig = Static<typeof ConfigSchema>
