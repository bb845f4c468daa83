import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import type { Config } from '../config/load.js'
import { NimaError, deadlineError, toNimaError } from '../errors.js'
import { countFailure } from '../http/error-handler.js'
import { acceptImageForm, configLimit, type ImageForm } from '../http/image-body.js'
import type { BoundCalibration } from '../calibration/bound-calibration.js'
import { normalizeWeights, resolveWeights } from '../scoring/combined.js'
import type { NimaModel } from '../scoring/nima-model.js'
import { rankImages, resolveRankOptions } from '../scoring/ranking.js'
import type { Served } from '../scoring/cached-scoring.js'
import { mapPool } from '../util/map-pool.js'
import { endAbandoned, scoringRequest, withDeadline } from '../http/request-lifecycle.js'
import { scoringSession, type RouteContext } from './context.js'
import { ErrorResponse, RankBody, RankResponse, RankUploadOptions } from './schemas.js'

/** How the response names an input: its URL (and id) in the JSON form, its part number (and filename) for uploads. */
type Ref = { url?: string; id?: string; part?: number }
type Input = { ref: Ref } & ({ url: string } | { bytes: Buffer })
type Outcome = { index: number; ref: Ref } & ({ ok: true; served: Served } | { ok: false; error: NimaError })

const checkUploadOptions = TypeCompiler.Compile(RankUploadOptions)

/**
 * POST /rank: a hotel's images as URLs (JSON) or as uploads (multipart), each distinct
 * image scored once, returned best first with near-duplicates folded into the best of
 * them and, on request, the first k picked for diversity (src/scoring/ranking.ts). URLs
 * are fetched through a bounded pool; a bad image lands in `failed`, never fails the call.
 * Each URL is fetched once and each distinct image scored once, through the score cache
 * (src/scoring/cached-scoring.ts).
 * If the client goes away, fetches in progress are aborted and the images not yet
 * fetched, decoded or inferred are dropped.
 */
export default async function rankRoute(app: FastifyInstance, ctx: RouteContext) {
  const { config, metrics } = ctx
  // Every image is held in memory until scoring starts: at most RANK_MAX_IMAGES of
  // BODY_LIMIT_BYTES each, RANK_UPLOAD_MAX_BYTES in all, which the upload budget reserves.
  const uploads = await acceptImageForm(app, {
    imageBytes: configLimit(config, 'BODY_LIMIT_BYTES'),
    images: configLimit(config, 'RANK_MAX_IMAGES'),
    totalBytes: configLimit(config, 'RANK_UPLOAD_MAX_BYTES'),
    fields: ['options'],
    fieldBytes: 64 * 1024,
  })
  app.withTypeProvider<TypeBoxTypeProvider>().post(
    '/rank',
    {
      ...uploads.routeOptions,
      schema: {
        summary: "Rank a set of images (e.g. one hotel's photos) by combined score",
        description:
          'Send JSON `{images: [{url, id?}], ...options}`, or multipart/form-data with one file part `image` per photo (its filename is echoed as `id`) and an optional JSON field `options` holding the same options. Near-duplicates are folded into the best-scoring of them; `select` picks the first k by maximal marginal relevance.',
        body: { content: { 'application/json': { schema: RankBody } } } as never,
        response: { 200: RankResponse, '4xx': ErrorResponse, '5xx': ErrorResponse },
      },
    },
    async (request, reply) =>
      scoringRequest(ctx, request, reply, async (signals, scorer) => {
        const { signal } = signals
        const started = performance.now()
        const { inputs, options } = request.isMultipart() ? fromForm(await uploads.readForm(request)) : fromJson(request.body as RankBody | undefined, config)
        const models = scorer.resolveModels(options.models)
        const weights = options.weights
        const rankOptions = resolveRankOptions(options)
        const resolvedWeights = resolveWeights(models.map((m) => m.info), config.combinedWeights, weights)
        // Refused before any work: a threshold that cannot be applied must not cost a fetch.
        if (options.minPercentile !== undefined) requireCombinedCalibration(scorer.calibration, models, resolvedWeights)
        const session = scoringSession(ctx, scorer, models, weights, signal)

        const outcomes = await mapPool(inputs, config.RANK_FETCH_CONCURRENCY, async (input, index): Promise<Outcome> => {
          const { ref } = input
          try {
            const served = await withDeadline('bytes' in input ? session.bytes(input.bytes) : session.url(input.url), signals.deadline)
            return { index, ref, ok: true, served }
          } catch (err) {
            // Nobody will read this failure: no error to count (endAbandoned below logs once).
            if (signals.clientGone.aborted) return { index, ref, ok: false, error: toNimaError(err) }
            const error = signals.deadline.aborted ? deadlineError() : toNimaError(err)
            countFailure(request, metrics, err, error, { index })
            return { index, ref, ok: false, error }
          }
        })

        if (signals.clientGone.aborted) {
          return endAbandoned(request, reply, metrics, { images: inputs.length, scored: outcomes.filter((o) => o.ok).length })
        }
        const succeeded = outcomes.filter((o): o is Outcome & { ok: true } => o.ok)
        const min = options.minPercentile
        // Below the threshold: apart, in input order, before ranking (so neither folding nor
        // `select` sees them). Every combined score carries a percentile here: the
        // calibration was checked to cover these models and weights.
        const below = (o: Outcome & { ok: true }) => min !== undefined && (o.served.score.combined.percentile ?? 0) < min
        const scored = succeeded.filter((o) => !below(o))
        const excluded = min === undefined ? undefined : succeeded.filter(below).map((o) => ({
          ...o.ref,
          image: o.served.score.image,
          combined: o.served.score.combined,
          scores: o.served.score.scores,
          reason: { code: 'BELOW_MIN_PERCENTILE' as const, message: `combined percentile ${o.served.score.combined.percentile} is below minPercentile ${min}` },
        }))
        const ranked = rankImages(
          scored.map((o) => ({
            index: o.index,
            contentKey: o.served.score.image.id,
            phash: o.served.score.image.phash,
            phashCrops: o.served.score.image.phashCrops,
            combined: o.served.score.combined.score,
            means: Object.fromEntries(Object.entries(o.served.score.scores).map(([id, s]) => [id, s.mean])),
            tasks: Object.fromEntries(Object.entries(o.served.score.models).map(([id, m]) => [id, m.task])),
            item: o,
          })),
          rankOptions,
        ).map(({ rank, selected, item, duplicates, nearDuplicates }) => ({
          rank,
          ...(selected !== undefined ? { selected } : {}),
          ...item.ref,
          image: item.served.score.image,
          combined: item.served.score.combined,
          scores: item.served.score.scores,
          cache: item.served.cache,
          duplicates: duplicates.map((d) => d.ref),
          nearDuplicates: nearDuplicates.map((n) => ({ ...n.item.ref, distance: n.distance, similarity: n.similarity })),
        }))
        const failed = outcomes
          .filter((o): o is Outcome & { ok: false } => !o.ok)
          .map((o) => ({ ...o.ref, error: { code: o.error.code, message: o.error.message } }))
        const info = Object.fromEntries(models.map((m) => [m.info.id, m.info]))
        return reply.send({
          requestId: String(request.id),
          ranked,
          failed,
          ...(excluded ? { excluded } : {}),
          weights: normalizeWeights(resolvedWeights),
          models: info,
          nearDuplicates: {
            enabled: rankOptions.nearDuplicates !== undefined,
            maxDistance: rankOptions.nearDuplicates?.maxDistance ?? resolveRankOptions().nearDuplicates!.maxDistance,
          },
          ...(rankOptions.select ? { select: rankOptions.select } : {}),
          timings: { totalMs: performance.now() - started },
        })
      }),
  )
}

/** minPercentile needs a combined percentile for exactly these models and weights. */
function requireCombinedCalibration(calibration: BoundCalibration | undefined, models: readonly NimaModel[], weights: Readonly<Record<string, number>>): void {
  const ids = models.map((m) => m.info.id)
  if (calibration?.combinedFor(ids, weights)) return
  const asked = ids.map((id) => `${id}=${weights[id]}`).join(',')
  const covered = calibration?.file.combined.map((c) => Object.entries(c.weights).map(([id, w]) => `${id}=${w}`).join(',')) ?? []
  throw new NimaError(
    'NIMA_NOT_CALIBRATED',
    calibration === undefined
      ? 'minPercentile needs a calibration: the service runs without SCORE_CALIBRATION'
      : `minPercentile needs a calibration of the combined score ${asked} of the loaded model files; SCORE_CALIBRATION has ${covered.length > 0 ? covered.join(' and ') : 'no combined score'}${covered.length > 0 ? ' (for these model files, if they are loaded)' : ''}`,
  )
}

function checkCount(n: number, config: Config): void {
  if (n > config.RANK_MAX_IMAGES) throw new NimaError('NIMA_TOO_MANY_IMAGES', `${n} images sent; RANK_MAX_IMAGES allows ${config.RANK_MAX_IMAGES}`)
}

function fromJson(body: RankBody | undefined, config: Config): { inputs: Input[]; options: RankUploadOptions } {
  // The schema checks JSON bodies only (uploads are parsed apart): an empty body gets here unchecked.
  if (typeof body !== 'object' || body === null || !Array.isArray(body.images)) {
    throw new NimaError('NIMA_MISSING_IMAGE', 'send JSON {"images": [{"url": ...}]}, or multipart/form-data with one "image" part per photo')
  }
  const { images, ...options } = body
  checkCount(images.length, config)
  return { inputs: images.map(({ url, id }) => ({ url, ref: { url, ...(id !== undefined ? { id } : {}) } })), options }
}

/** The multipart form: each image part's filename is its id; the field `options` is JSON (RankUploadOptions). */
function fromForm({ images, fields }: ImageForm): { inputs: Input[]; options: RankUploadOptions } {
  const options = fields.options === undefined ? {} : parseUploadOptions(fields.options)
  const inputs = images.map(({ bytes, filename, index }): Input => {
    const id = filename?.slice(0, 256)
    return { bytes, ref: { ...(id !== undefined ? { id } : {}), part: index } }
  })
  return { inputs, options }
}

function parseUploadOptions(value: string): RankUploadOptions {
  let parsed: unknown
  try {
    parsed = JSON.parse(value)
  } catch (err) {
    throw new NimaError('NIMA_INVALID_REQUEST', `field "options" is not JSON: ${(err as Error).message}`)
  }
  if (!checkUploadOptions.Check(parsed)) {
    const first = checkUploadOptions.Errors(parsed).First()
    throw new NimaError('NIMA_INVALID_REQUEST', `field "options"${first?.path || ''}: ${first?.message ?? 'invalid'}`)
  }
  return parsed
}
