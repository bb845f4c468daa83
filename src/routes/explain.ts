import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { renderOverlay } from '../imaging/overlay.js'
import { acceptOneImage, configLimit } from '../http/image-body.js'
import { fetchForRequest, scoringRequest, withDeadline } from '../http/request-lifecycle.js'
import { explainBytes } from '../scoring/explain.js'
import { parseModelList, type RouteContext } from './context.js'
import { ExplainQuery, ExplainResponse, ExplainUrlBody } from './explain-schemas.js'
import { ErrorResponse } from './schemas.js'

/** Longest side of each panel of the PNG answer: what a review page shows, not the photo's full size. */
const DISPLAY_SIZE = 512

/**
 * POST /explain: one image, the same inputs as /score; per model its distribution and 7×7
 * score map (docs/explain.md), or with `format=png` the photo with the maps over it.
 */
export default async function explainRoute(app: FastifyInstance, ctx: RouteContext) {
  const { config } = ctx
  const body = await acceptOneImage(app, { imageBytes: configLimit(config, 'BODY_LIMIT_BYTES'), fields: [], fieldBytes: 0 })
  app.withTypeProvider<TypeBoxTypeProvider>().post(
    '/explain',
    {
      ...body.routeOptions,
      schema: {
        summary: 'Explain the scores of one image: where it raises or lowers each model’s mean',
        description:
          'Same inputs as /score (multipart `image`, a raw image body, or JSON `{"url": ...}`). Per model: the distribution and the 7×7 score map S = Σᵢ pᵢ(vᵢ − E)·Mᵢ, a first-order explanation (docs/explain.md); `logits=true` adds the ten logit maps. `format=png` answers image/png: the photo at display size with each map over it and a legend. Models whose file predates the feature-map output answer 409 NIMA_EXPLANATION_UNAVAILABLE.',
        querystring: ExplainQuery,
        body: { content: { 'application/json': { schema: ExplainUrlBody } } } as never,
        response: {
          200: {
            description: 'JSON explanation, or with format=png the overlay picture (image/png)',
            content: { 'application/json': { schema: ExplainResponse }, 'image/png': { schema: { type: 'string', format: 'binary' } } },
          },
          '4xx': ErrorResponse,
          '5xx': ErrorResponse,
        } as never,
      },
    },
    async (request, reply) =>
      scoringRequest(ctx, request, reply, async (signals, scorer) => {
        const started = performance.now()
        const models = scorer.resolveModels(parseModelList(request.query.models))
        const input = await body.readOne(request)
        // A URL is fetched here, past the score cache: /explain always decodes and infers.
        const { bytes, fetchMs } = 'bytes' in input ? { bytes: input.bytes, fetchMs: undefined } : await fetchForRequest(ctx.images, ctx.metrics, input.url, signals)
        const png = request.query.format === 'png'
        // The overlay's photo is a display copy made by the same decode, inside the admission.
        const explained = await withDeadline(
          explainBytes(scorer, bytes, models, { logits: !png && request.query.logits === 'true', signal: signals.signal, ...(png ? { preview: DISPLAY_SIZE } : {}) }),
          signals.deadline,
        )
        const result = explained.explanation
        if (png) {
          const panels = Object.values(result.explanations).map((e) => ({
            title: `${e.model.id}${e.model.synthetic ? ' (SYNTHETIC weights: meaningless)' : ''}: mean ${e.score.mean.toFixed(2)}`,
            map: e.scoreMap,
            maxAbs: e.maxAbs,
          }))
          const picture = await withDeadline(renderOverlay(explained.preview!, panels), signals.deadline)
          return reply.type('image/png').header('cache-control', 'no-store').send(picture)
        }
        return reply.send({
          requestId: String(request.id),
          ...result,
          timings: { ...(fetchMs !== undefined ? { fetchMs } : {}), ...result.timings, totalMs: performance.now() - started },
        })
      }),
  )
}
