import type { FastifyInstance, FastifyRequest } from 'fastify'
import multipart from '@fastify/multipart'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { NimaError, multipartError } from '../errors.js'
import { RAW_BODY_MEDIA_TYPES } from '../imaging/formats.js'
import { countAbandoned, scoringRequest, withDeadline, type RequestSignals } from '../http/request-lifecycle.js'
import { parseModelList, scoringSession, type RouteContext } from './context.js'
import { ErrorResponse, ScoreQuery, ScoreResponse, ScoreUrlBody } from './schemas.js'


/**
 * POST /score: one image as a multipart field `image`, a raw image body, or JSON
 * `{url}`. The format is decided by magic bytes, whatever the Content-Type claims.
 */
export default async function scoreRoute(app: FastifyInstance, ctx: RouteContext) {
  const { config, state } = ctx
  await acceptOneImage(app, config)

  app.withTypeProvider<TypeBoxTypeProvider>().post(
    '/score',
    {
      bodyLimit: config.BODY_LIMIT_BYTES,
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
        const input = await readInput(request)
        const session = scoringSession(ctx, scorer, models, input.weights, signals.signal)
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

/** The bodies one-image routes (/score, /explain) accept: multipart `image`, a raw image body, or JSON. */
export async function acceptOneImage(app: FastifyInstance, config: RouteContext['config']): Promise<void> {
  await app.register(multipart, {
    limits: { fileSize: config.BODY_LIMIT_BYTES, files: 1, fields: 4, parts: 5, fieldSize: 4096 },
  })
  // Plain text is never an image: let it fall through to 415 instead of a confusing 400.
  app.removeContentTypeParser('text/plain')
  app.addContentTypeParser([...RAW_BODY_MEDIA_TYPES], { parseAs: 'buffer', bodyLimit: config.BODY_LIMIT_BYTES }, (_req, body, done) =>
    done(null, body),
  )
}

/**
 * What /explain reads: the image's bytes, a URL fetched here (no score cache: /explain
 * always decodes and infers).
 */
export async function readImage(
  request: FastifyRequest,
  ctx: RouteContext,
  signals: RequestSignals,
): Promise<{ bytes: Buffer; fetchMs?: number; weights?: Record<string, number> }> {
  const input = await readInput(request)
  if (!('url' in input)) return input
  const { bytes, fetchMs } = await ctx.images.fetch(input.url, signals.signal).catch((err: unknown) => {
    countAbandoned(ctx.metrics, 'fetch', err)
    throw err
  })
  return { bytes, fetchMs, ...(input.weights ? { weights: input.weights } : {}) }
}

/** A one-image body: bytes (multipart or raw), or JSON `{url, weights?}` left for the caller to fetch. */
async function readInput(request: FastifyRequest): Promise<({ bytes: Buffer } | { url: string }) & { weights?: Record<string, number> }> {
  if (request.isMultipart()) {
    try {
      return { bytes: await readMultipartImage(request) }
    } catch (err) {
      throw multipartError(err)
    }
  }
  if (Buffer.isBuffer(request.body)) return { bytes: request.body }
  const body = request.body as ScoreUrlBody | undefined
  if (body && typeof body.url === 'string') return { url: body.url, ...(body.weights ? { weights: body.weights } : {}) }
  throw new NimaError('NIMA_MISSING_IMAGE', 'send an image as multipart field "image", as a raw image body, or JSON {"url": ...}')
}

async function readMultipartImage(request: FastifyRequest): Promise<Buffer> {
  let bytes: Buffer | undefined
  for await (const part of request.parts()) {
    if (part.type !== 'file') continue
    if (part.fieldname !== 'image') {
      part.file.resume()
      throw new NimaError('NIMA_INVALID_REQUEST', `unexpected file field ${JSON.stringify(part.fieldname)}; send the image as field "image"`)
    }
    bytes = await part.toBuffer()
  }
  if (!bytes) throw new NimaError('NIMA_MISSING_IMAGE', 'multipart body has no file field "image"')
  return bytes
}
