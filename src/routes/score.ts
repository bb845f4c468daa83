import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { acceptOneImage, configLimit } from '../http/image-body.js'
import { scoringRequest, withDeadline } from '../http/request-lifecycle.js'
import { parseModelList, scoringSession, type RouteContext } from './context.js'
import { ErrorResponse, ScoreQuery, ScoreResponse, ScoreUrlBody } from './schemas.js'


/**
 * POST /score: one image as a multipart field `image`, a raw image body, or JSON
 * `{url}`. The format is decided by magic bytes, whatever the Content-Type claims.
 */
export default async function scoreRoute(app: FastifyInstance, ctx: RouteContext) {
  const { config } = ctx
  const body = await acceptOneImage(app, { imageBytes: configLimit(config, 'BODY_LIMIT_BYTES'), fields: [], fieldBytes: 0 })

  app.withTypeProvider<TypeBoxTypeProvider>().post(
    '/score',
    {
      ...body.routeOptions,
      schema: {
        summary: 'Score one image',
        description:
          'Send the image as multipart/form-data (field `image`), as a raw body (image/jpeg, image/png, image/webp, image/gif, image/tiff, image/avif, application/octet-stream), or as JSON `{"url": ...}`.',
        querystring: ScoreQuery,
        body: { content: { 'application/json': { schema: ScoreUrlBody } } } as never,
        response: { 200: ScoreResponse, '4xx': ErrorResponse, '5xx': ErrorResponse },
      },
    },
    async (request, reply) =>
      scoringRequest(ctx, request, reply, async (signals, scorer) => {
        const started = performance.now()
        const models = scorer.resolveModels(parseModelList(request.query.models))
        const input = await body.readOne<ScoreUrlBody>(request)
        const session = scoringSession(ctx, scorer, models, 'url' in input ? input.weights : undefined, signals.signal)
        const { score, cache, fetchMs } = await withDeadline('url' in input ? session.url(input.url) : session.bytes(input.bytes), signals.deadline)
        return reply.send({
          requestId: String(request.id),
          ...score,
          cache,
          timings: { ...(fetchMs !== undefined ? { fetchMs } : {}), ...score.timings, totalMs: performance.now() - started },
        })
      }),
  )
}
