import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { NimaError } from '../errors.js'
import { toNimaError } from '../http/error-handler.js'
import { imageId } from '../imaging/decode.js'
import { resolveWeights } from '../scoring/combined.js'
import { rankImages } from '../scoring/ranking.js'
import type { ImageScore } from '../scoring/scorer.js'
import { mapPool } from '../util/map-pool.js'
import { countAbandoned, deadlineError, endAbandoned, scoringRequest, withDeadline } from '../http/request-lifecycle.js'
import type { RouteContext } from './context.js'
import { ErrorResponse, RankBody, RankResponse } from './schemas.js'

type Outcome = { index: number; url: string; id?: string } & ({ ok: true; score: ImageScore } | { ok: false; error: NimaError })

/**
 * POST /rank: fetch a hotel's images through a bounded pool, score each distinct image
 * once, and return them best first. A bad URL lands in `failed`, never fails the call.
 * If the client goes away, fetches in progress are aborted and the images not yet
 * fetched, decoded or inferred are dropped.
 */
export default async function rankRoute(app: FastifyInstance, ctx: RouteContext) {
  const { config, state, metrics } = ctx
  app.withTypeProvider<TypeBoxTypeProvider>().post(
    '/rank',
    {
      schema: {
        summary: "Rank a set of images (e.g. one hotel's photos) by combined score",
        body: RankBody,
        response: { 200: RankResponse, '4xx': ErrorResponse, '5xx': ErrorResponse },
      },
    },
    async (request, reply) =>
      scoringRequest(ctx, request, reply, async (signals) => {
        const { signal } = signals
        const started = performance.now()
        const scorer = state.requireScorer()
        const { images, weights } = request.body
        if (images.length > config.RANK_MAX_IMAGES) {
          throw new NimaError('NIMA_TOO_MANY_IMAGES', `${images.length} images sent; RANK_MAX_IMAGES allows ${config.RANK_MAX_IMAGES}`)
        }
        const models = scorer.resolveModels(request.body.models)
        const fetches = new Map<string, Promise<{ bytes: Buffer }>>()
        const scores = new Map<string, Promise<ImageScore>>()

        const outcomes = await mapPool(images, config.RANK_FETCH_CONCURRENCY, async ({ url, id }, index): Promise<Outcome> => {
          const ref = { index, url, ...(id !== undefined ? { id } : {}) }
          try {
            let fetched = fetches.get(url)
            if (!fetched) {
              fetched = ctx.images.fetch(url, signal)
              fetches.set(url, fetched)
              // Counted once per distinct URL, like the fetch itself.
              fetched.catch((err: unknown) => countAbandoned(metrics, 'fetch', err))
            }
            const { bytes } = await fetched
            const key = imageId(bytes)
            let scored = scores.get(key)
            if (!scored) scores.set(key, (scored = withDeadline(scorer.scoreBytes(bytes, models, weights, signal), signals.deadline)))
            return { ...ref, ok: true, score: await scored }
          } catch (err) {
            // Nobody will read this failure: no error to count (endAbandoned below logs once).
            if (signals.clientGone.aborted) return { ...ref, ok: false, error: toNimaError(err) }
            const error = signals.deadline.aborted ? deadlineError() : toNimaError(err)
            metrics.errors.inc({ code: error.code })
            if (error.code === 'NIMA_INTERNAL') request.log.error({ err, index }, 'rank: image failed')
            return { ...ref, ok: false, error }
          }
        })

        if (signals.clientGone.aborted) {
          return endAbandoned(request, reply, metrics, { images: images.length, scored: outcomes.filter((o) => o.ok).length })
        }
        const scored = outcomes.filter((o): o is Outcome & { ok: true } => o.ok)
        const ranked = rankImages(
          scored.map((o) => ({
            index: o.index,
            contentKey: o.score.image.id,
            combined: o.score.combined.score,
            means: Object.fromEntries(Object.entries(o.score.scores).map(([id, s]) => [id, s.mean])),
            tasks: Object.fromEntries(Object.entries(o.score.models).map(([id, m]) => [id, m.task])),
            item: o,
          })),
        ).map(({ rank, item, duplicates }) => ({
          rank,
          url: item.url,
          ...(item.id !== undefined ? { id: item.id } : {}),
          image: item.score.image,
          combined: item.score.combined,
          scores: item.score.scores,
          duplicates: duplicates.map((d) => ({ url: d.url, ...(d.id !== undefined ? { id: d.id } : {}) })),
        }))
        const failed = outcomes
          .filter((o): o is Outcome & { ok: false } => !o.ok)
          .map((o) => ({
            url: o.url,
            ...(o.id !== undefined ? { id: o.id } : {}),
            error: { code: o.error.code, message: o.error.message },
          }))
        const info = Object.fromEntries(models.map((m) => [m.info.id, m.info]))
        return reply.send({
          requestId: String(request.id),
          ranked,
          failed,
          weights: resolveWeights(models.map((m) => m.info), config.combinedWeights, weights),
          models: info,
          timings: { totalMs: performance.now() - started },
        })
      }),
  )
}
