import type { FastifyBaseLogger } from 'fastify'
import type { Config } from '../config/load.js'
import { float16VariantOf, modelRef, scanModels, selectModel, type CatalogEntry } from '../models/catalog.js'
import { manifestPrecision } from '../models/manifest.js'
import { planThreads } from '../threads/plan-threads.js'
import type { ThreadPlan } from '../threads/resolve-threads.js'
import { NimaModel } from './nima-model.js'
import { bindCalibration, readConfiguredCalibration } from './load-calibration.js'
import type { ScoringObserver } from './observer.js'
import { pipelineImagesFor, Scorer } from './scorer.js'

/**
 * Finds each configured model in MODELS_DIR (real weights before synthetic), opens its
 * session, warms it up, and says loudly which kind of weights are serving. Thread counts
 * come resolved (src/threads): ORT intra-op threads and decode slots from the CPU budget.
 * `observer` hears what scoring does (the service's metrics); tools pass none.
 * SCORE_CALIBRATION, when set, is read before any model loads (a bad file fails at once)
 * and bound to the models once they have (a file for other weights fails then).
 */
export async function loadScorer(
  config: Config,
  log: FastifyBaseLogger,
  threads: ThreadPlan = planThreads(config, 'started'),
  observer: ScoringObserver = {},
): Promise<Scorer> {
  const calibration = await readConfiguredCalibration(config)
  const selected = await selectModels(config, log)
  const models = new Map<string, NimaModel>()
  let scorer: Scorer
  try {
    for (const [id, entry] of selected) {
      const model = await NimaModel.load(
        entry,
        {
          providers: config.executionProviders,
          intraOpThreads: threads.ortIntraOpThreads.value,
          interOpThreads: config.ORT_INTER_OP_THREADS,
          allowSpinning: config.ORT_ALLOW_SPINNING,
          thread: config.INFERENCE_THREAD,
        },
        { maxBatchSize: config.BATCH_MAX_SIZE, maxWaitMs: config.BATCH_MAX_WAIT_MS, maxQueue: config.QUEUE_MAX },
        observer,
      )
      models.set(id, model)
      for (const f of model.fallbacks) log.warn({ model: id, provider: f.provider, error: f.error }, 'execution provider unavailable, falling back')
      const started = performance.now()
      await model.warmUp(1)
      if (config.BATCH_MAX_SIZE > 1) await model.warmUp(config.BATCH_MAX_SIZE)
      const { manifest: m, info } = model
      const line = { model: id, version: m.version, task: m.task, synthetic: m.synthetic, precision: manifestPrecision(m), provider: info.provider, sha256: m.sha256, warmUpMs: Math.round(performance.now() - started), sessionThreadId: model.threadId }
      if (m.synthetic) log.warn(line, `model ${id} uses SYNTHETIC weights (seeded random): its scores are meaningless; run \`npx nima-serve models pull\` for the real idealo weights`)
      else log.info(line, `model ${id} uses REAL weights (${m.provenance.kind})`)
    }
    const bound = calibration ? bindCalibration(calibration, models.values(), log) : undefined
    scorer = new Scorer(
      models,
      {
        defaultModels: config.models.slice(0, 2),
        defaultWeights: config.combinedWeights,
        maxInputPixels: config.MAX_INPUT_PIXELS,
        decodeConcurrency: threads.decodeSlots.value,
        decodeIsolation: config.DECODE_ISOLATION,
        decodeInlineMaxPixels: config.DECODE_INLINE_MAX_PIXELS,
        decodeTimeoutMs: config.DECODE_TIMEOUT_MS,
        decodeMemoryBudgetBytes: config.DECODE_MEMORY_BUDGET_BYTES,
        maxJpegScans: config.JPEG_MAX_SCANS,
        pipelineImages: config.PIPELINE_MAX_IMAGES || pipelineImagesFor(config.BATCH_MAX_SIZE, threads.decodeSlots.value),
        maxWaiting: config.QUEUE_MAX,
        preprocess: config.PREPROCESS,
      },
      observer,
    )
    scorer.useCalibration(bound)
  } catch (err) {
    await Promise.all([...models.values()].map((m) => m.dispose()))
    throw err
  }
  return scorer
}

/**
 * The model files MODELS_DIR holds for each configured id, as the service would serve
 * them now: real weights before synthetic, then the newest, then the float16 variant when
 * MODEL_PRECISION asks for it. Loading and reloading both start here.
 */
export async function selectModels(config: Config, log: FastifyBaseLogger): Promise<Map<string, CatalogEntry>> {
  const { entries, problems } = await scanModels(config.MODELS_DIR)
  for (const p of problems) log.warn({ path: p.path, error: p.error }, 'skipping unreadable model manifest')
  const selected = new Map<string, CatalogEntry>()
  for (const id of config.models) {
    const base = selectModel(entries, id)
    if (!base) {
      throw new Error(
        `model "${id}" not found in ${config.MODELS_DIR} (found: ${[...new Set(entries.map((e) => e.manifest.id))].join(', ') || 'none'}); ` +
          'run `npx nima-serve models ensure` for synthetic models or `npx nima-serve models pull` for the real idealo weights',
      )
    }
    selected.set(id, withPrecision(entries, base, config.MODEL_PRECISION, log))
  }
  return selected
}

/**
 * The float16 variant of `base` when MODEL_PRECISION asks for it. A missing variant is a
 * warning, not a failure: float32 gives the same scores, only slower on a GPU, and a
 * service that refuses to start over it would turn a tuning choice into an outage.
 */
function withPrecision(entries: readonly CatalogEntry[], base: CatalogEntry, precision: 'float32' | 'float16', log: FastifyBaseLogger): CatalogEntry {
  if (precision === 'float32') return base
  const variant = float16VariantOf(entries, base)
  if (variant) return variant
  log.warn(
    { model: base.manifest.id, version: base.manifest.version },
    `MODEL_PRECISION=float16 but ${modelRef(base.manifest)} has no float16 variant; serving float32 (make one with \`npx nima-serve models fp16 --check <photos>\`)`,
  )
  return base
}
