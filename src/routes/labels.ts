import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { NimaError } from '../errors.js'
import { acceptOneImage, configLimit } from '../http/image-body.js'
import { contentType, csvHeader, formatRow } from '../labels/export.js'
import { fetchForRequest, holdScorerFromHeaders, scoringRequest, withDeadline, type RequestSignals } from '../http/request-lifecycle.js'
import { registerPage } from '../http/static-page.js'
import { LabelStore, LabelStoreError, type LabelImage } from '../labels/store.js'
import type { Scorer } from '../scoring/scorer.js'
import type { RouteContext } from './context.js'
import {
  AddImageQuery,
  AddImageResponse,
  AddImageUrlBody,
  ExportQuery,
  ImageIdParams,
  ListImagesQuery,
  ListImagesResponse,
  ListRatingsQuery,
  ListRatingsResponse,
  NextQuery,
  NextResponse,
  RatingBody,
  RatingIdParams,
  RatingResponse,
  SummaryResponse,
} from './labels-schemas.js'
import { ErrorResponse } from './schemas.js'
// Type-only: declares the `public` route config that the API-key plugin honours.
import type {} from '../http/auth.js'

export interface LabelRoutesOptions extends RouteContext {
  /** The SQLite file (created if missing). Ignored when `store` is given. */
  dbPath?: string
  /** An open store, e.g. shared with a test; the plugin then leaves closing it to the caller. */
  store?: LabelStore
}

const FILE_TYPES: Record<string, string> = {
  jpeg: 'image/jpeg',
  png: 'image/png',
  webp: 'image/webp',
  gif: 'image/gif',
  tiff: 'image/tiff',
  avif: 'image/avif',
}

/** Store failures as API errors: clients match on code. */
export function toApiError(err: unknown): unknown {
  if (!(err instanceof LabelStoreError)) return err
  switch (err.code) {
    case 'NOT_FOUND':
      return new NimaError('NIMA_NOT_FOUND', err.message, { cause: err })
    case 'INVALID':
      return new NimaError('NIMA_INVALID_REQUEST', err.message, { cause: err })
    case 'LOCKED':
      return new NimaError('NIMA_OVERLOADED', 'the label database is busy, retry shortly', { cause: err, headers: { 'retry-after': '1' } })
    default:
      return err
  }
}

function run<T>(fn: () => T): T {
  try {
    return fn()
  } catch (err) {
    throw toApiError(err)
  }
}

/**
 * The labelling API (/labels/*) and page (/label): store photos once by sha256 (upload or
 * URL), hand each rater the images they have not rated, record ratings (an integer 1..10 or
 * a 10-bin vote histogram), list/delete/export them and summarise agreement between raters.
 * Labels feed `nima-serve finetune`.
 */
export default async function labelRoutes(app: FastifyInstance, opts: LabelRoutesOptions): Promise<void> {
  const { config } = opts
  const ownStore = opts.store === undefined
  if (ownStore && !opts.dbPath) throw new Error('labelRoutes: pass dbPath (the label database file) or an open store')
  const store = opts.store ?? (await LabelStore.open(opts.dbPath!))
  if (ownStore) app.addHook('onClose', async () => store.close())
  if (store.recovered) app.log.warn({ labelsDb: store.path }, `label database recovered after a crash: ${store.recovered}`)

  // The group is a Name (labels-schemas.ts): 256 bytes hold any of them.
  const upload = await acceptOneImage(app, { imageBytes: configLimit(config, 'BODY_LIMIT_BYTES'), fields: ['group'], fieldBytes: 256 })

  const api = app.withTypeProvider<TypeBoxTypeProvider>()
  const errors = { '4xx': ErrorResponse, '5xx': ErrorResponse }
  const tags = ['labels']

  /**
   * Decodes under the same admission as scoring (header limits, memory budget, decode slot
   * and process) with the request's deadline and client-gone signal, then stores.
   */
  async function storeBytes(scorer: Scorer, signals: RequestSignals, bytes: Buffer, group: string | undefined, sourceUrl?: string): Promise<{ image: LabelImage; created: boolean }> {
    // The scorer counts a decode its client abandoned, as it does for scoring.
    const decoded = await withDeadline(scorer.inspect(bytes, signals.signal), signals.deadline)
    return run(() =>
      store.addImage({
        id: decoded.id,
        data: bytes,
        format: decoded.format,
        width: decoded.width,
        height: decoded.height,
        group: group ?? null,
        sourceUrl: sourceUrl ?? null,
      }),
    )
  }

  api.post(
    '/labels/images',
    {
      ...upload.routeOptions,
      // Outside the scoring routes' scope (app.ts), so the one labels route that decodes takes
      // the same hold from its headers on, and the rating routes beside it do not.
      preParsing: holdScorerFromHeaders(opts.state),
      schema: {
        tags,
        summary: 'Add an image to label',
        description:
          'Multipart (field `image`, optional field `group`), a raw image body (group in `?group=`), or JSON `{"url", "group"}`. Images are stored once by the sha256 of their bytes; a URL is fetched once.',
        querystring: AddImageQuery,
        body: { content: { 'application/json': { schema: AddImageUrlBody } } } as never,
        response: { 200: AddImageResponse, 201: AddImageResponse, ...errors },
      },
    },
    // The one labels route that decodes or fetches: a scoring request's lifecycle (counted in
    // flight, deadline → 503 NIMA_DEADLINE_EXCEEDED, a client gone → its work dropped, 499).
    async (request, reply) =>
      scoringRequest(opts, request, reply, async (signals, scorer) => {
        let result: { image: LabelImage; created: boolean }
        const input = await upload.readOne<AddImageUrlBody>(request)
        if ('bytes' in input) {
          result = await storeBytes(scorer, signals, input.bytes, input.fields.group || request.query.group)
        } else {
          const known = run(() => store.imageByUrl(input.url))
          if (known) {
            result = { image: known, created: false }
          } else {
            const { bytes } = await fetchForRequest(opts.images, opts.metrics, input.url, signals)
            result = await storeBytes(scorer, signals, bytes, input.group ?? request.query.group, input.url)
          }
        }
        return reply.code(result.created ? 201 : 200).send(result)
      }),
  )

  api.get(
    '/labels/images',
    { schema: { tags, summary: 'List stored images', querystring: ListImagesQuery, response: { 200: ListImagesResponse, ...errors } } },
    async (request) => {
      const { after, limit } = request.query
      const page = run(() => store.listImages({ limit: Number(limit ?? 100), ...(after !== undefined ? { after: Number(after) } : {}) }))
      return { images: page.items, next: page.next }
    },
  )

  api.get(
    '/labels/images/:id',
    { schema: { tags, summary: 'One stored image', params: ImageIdParams, response: { 200: AddImageResponse.properties.image, ...errors } } },
    async (request) => {
      const image = run(() => store.getImage(request.params.id))
      if (!image) throw new NimaError('NIMA_NOT_FOUND', `no image ${request.params.id} in the label database`)
      return image
    },
  )

  api.get(
    '/labels/images/:id/file',
    { schema: { tags, summary: 'The stored image bytes', params: ImageIdParams, response: { ...errors } } },
    async (request, reply) => {
      const image = run(() => store.getImage(request.params.id))
      const data = image ? run(() => store.imageData(image.id)) : undefined
      if (!image || !data) throw new NimaError('NIMA_NOT_FOUND', `no image ${request.params.id} in the label database`)
      return reply
        .type(FILE_TYPES[image.format] ?? 'application/octet-stream')
        .header('cache-control', 'private, max-age=31536000, immutable')
        .header('x-content-type-options', 'nosniff')
        .send(Buffer.from(data.buffer, data.byteOffset, data.byteLength) as never)
    },
  )

  api.get(
    '/labels/next',
    {
      schema: {
        tags,
        summary: 'An image the rater has not rated',
        description: 'Least-rated images first, then the oldest. `skip` passes over images without rating them.',
        querystring: NextQuery,
        response: { 200: NextResponse, ...errors },
      },
    },
    async (request) => {
      const skip = request.query.skip ? request.query.skip.split(',') : []
      const { image, remaining } = run(() => store.nextImage(request.query.rater, skip))
      return { image: image ?? null, remaining }
    },
  )

  api.post(
    '/labels/ratings',
    {
      schema: {
        tags,
        summary: 'Rate an image',
        description: 'An integer `rating` 1..10 or a 10-bin vote `histogram`. A rater has one rating per image: rating again replaces it (200 instead of 201).',
        body: RatingBody,
        response: { 200: RatingResponse, 201: RatingResponse, ...errors },
      },
    },
    async (request, reply) => {
      const { imageId, rater, rating, histogram } = request.body
      const input = rating !== undefined && histogram === undefined ? { imageId, rater, rating } : histogram !== undefined && rating === undefined ? { imageId, rater, histogram } : undefined
      if (!input) throw new NimaError('NIMA_INVALID_REQUEST', 'send exactly one of rating (an integer 1..10) and histogram (10 vote counts)')
      const result = run(() => store.rate(input))
      return reply.code(result.created ? 201 : 200).send(result)
    },
  )

  api.get(
    '/labels/ratings',
    { schema: { tags, summary: 'List ratings', querystring: ListRatingsQuery, response: { 200: ListRatingsResponse, ...errors } } },
    async (request) => {
      const { after, limit, rater, imageId } = request.query
      const page = run(() =>
        store.listRatings({ limit: Number(limit ?? 100), ...(after !== undefined ? { after: Number(after) } : {}), ...(rater !== undefined ? { rater } : {}), ...(imageId !== undefined ? { imageId } : {}) }),
      )
      return { ratings: page.items, next: page.next }
    },
  )

  api.delete(
    '/labels/ratings/:id',
    { schema: { tags, summary: 'Delete a rating', params: RatingIdParams, response: { ...errors } } },
    async (request, reply) => {
      if (!run(() => store.deleteRating(Number(request.params.id)))) throw new NimaError('NIMA_NOT_FOUND', `no rating ${request.params.id}`)
      return reply.code(204).send(undefined as never)
    },
  )

  api.get(
    '/labels/export',
    {
      schema: {
        tags,
        summary: 'Every rating as JSON Lines or CSV',
        description: 'One row per rating with its image id (sha256), group and source URL: the input of `nima-serve finetune --labels`.',
        querystring: ExportQuery,
        response: { ...errors },
      },
    },
    async (request, reply) => {
      const format = request.query.format ?? 'jsonl'
      const chunks: string[] = format === 'csv' ? [csvHeader()] : []
      for (const row of run(() => [...store.exportRows()])) chunks.push(formatRow(row, format))
      return reply
        .type(contentType(format))
        .header('content-disposition', `attachment; filename="labels.${format}"`)
        .send(chunks.join('') as never)
    },
  )

  api.get(
    '/labels/summary',
    { schema: { tags, summary: 'Counts, rating histogram and agreement between raters', response: { 200: SummaryResponse, ...errors } } },
    async () => {
      const s = run(() => store.summary())
      return { ...s, ratingStd: { ...s.ratingStd, raw: Number.isFinite(s.ratingStd.raw) ? s.ratingStd.raw : null } }
    },
  )

  await registerPage(app, { path: '/label', folder: 'labels/page' })
}

export { labelRoutes }

