/** Shared pieces of the batch tests: a loaded scorer, small photos, results readers. */
import { readFileSync, statSync } from 'node:fs'
import { pino } from 'pino'
import type { FastifyBaseLogger } from 'fastify'
import { readInput, type InputFormat } from '../../src/batch/input.js'
import { runBatch, type BatchRunOptions, type BatchSummary, type ResultLine } from '../../src/batch/pipeline.js'
import type { ScoreCache } from '../../src/batch/score-cache.js'
import { loadConfig } from '../../src/config/load.js'
import type { RawConfig } from '../../src/config/schema.js'
import { createAddressPolicy } from '../../src/fetching/address-policy.js'
import { createImageFetcher } from '../../src/fetching/fetch-image.js'
import { createImageSource } from '../../src/fetching/image-source.js'
import { createMetrics } from '../../src/metrics/metrics.js'
import { loadScorer } from '../../src/scoring/load-scorer.js'
import type { Scorer } from '../../src/scoring/scorer.js'
import { testModelsDir } from '../helpers/models.js'
import { samplePhotos } from '../helpers/paths.js'

export const silentLog = pino({ level: 'silent' }) as unknown as FastifyBaseLogger

export async function loadTestScorer(overrides: Partial<RawConfig> = {}): Promise<Scorer> {
  const config = loadConfig({}, { MODELS_DIR: await testModelsDir(), LOG_LEVEL: 'silent', BATCH_MAX_SIZE: 4, ...overrides })
  return loadScorer(config, silentLog)
}

/** The `n` smallest distinct sample photos (fast to decode), smallest first. */
export function smallPhotos(n: number): string[] {
  const seen = new Set<number>()
  return samplePhotos()
    .map((p) => ({ p, size: statSync(p).size }))
    .sort((a, b) => a.size - b.size)
    .filter(({ size }) => (seen.has(size) ? false : (seen.add(size), true)))
    .slice(0, n)
    .map(({ p }) => p)
}

export function readResults(path: string): ResultLine[] {
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as ResultLine)
}

/** runBatch in-process with a given scorer (models load once per test file). */
export async function runInProcess(
  scorer: Scorer,
  input: { path: string; format: InputFormat },
  options: Partial<BatchRunOptions> & { output: string },
  extra: { cache?: ScoreCache; allow?: string[] } = {},
): Promise<BatchSummary> {
  const fetcher = createImageFetcher({ policy: createAddressPolicy({ allow: extra.allow ?? [] }), connectTimeoutMs: 2000, headersTimeoutMs: 2000, bodyTimeoutMs: 5000 })
  const images = createImageSource(loadConfig({}, {}), { fetcher, perHost: 4 })
  try {
    return await runBatch(
      { mode: 'new', concurrency: 16, scoreSlots: 10, maxFileBytes: 20 << 20, ...options },
      {
        items: readInput(input.path, { format: input.format }),
        scorer,
        models: scorer.resolveModels(),
        weights: { aesthetic: 0.6, technical: 0.4 },
        images,
        ...(extra.cache ? { cache: extra.cache } : {}),
        log: () => {},
      },
    )
  } finally {
    await images.close()
  }
}
