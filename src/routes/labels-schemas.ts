import { Type, type Static } from '@sinclair/typebox'

/**
 * Schemas of the labelling API (/labels/*): validation, TypeScript types, response
 * serialisation and the OpenAPI document. Kept apart from schemas.ts so the feature stays in
 * its own files; none is registered with addSchema, so they carry no $id.
 */
const Sha256 = Type.String({ pattern: '^[0-9a-f]{64}$', description: 'sha256 of the image bytes' })
const Name = Type.String({ minLength: 1, maxLength: 64, pattern: '^[\\p{L}\\p{N}._@+ -]+$', description: '1-64 letters, digits, spaces or . _ @ + -' })
// Query strings are not type-coerced by this service's validator: numbers arrive as digits.
const Cursor = Type.String({ pattern: '^[0-9]{1,15}$', description: 'The previous page’s `next`' })
const Limit = Type.String({ pattern: '^([1-9][0-9]{0,2}|1000)$', description: 'Page size, 1 to 1000 (default 100)' })

export const LabelImage = Type.Object({
  id: Sha256,
  format: Type.String(),
  width: Type.Integer(),
  height: Type.Integer(),
  bytes: Type.Integer(),
  group: Type.Union([Type.String(), Type.Null()], { description: 'Images of one group (a hotel, a photo and its edits) are never split between training and test' }),
  sourceUrl: Type.Union([Type.String(), Type.Null()], { description: 'First URL the image was fetched from' }),
  createdAt: Type.String(),
  ratings: Type.Integer({ description: 'Ratings of this image, all raters' }),
})

export const Rating = Type.Object({
  id: Type.Integer(),
  imageId: Sha256,
  rater: Type.String(),
  rating: Type.Union([Type.Integer({ minimum: 1, maximum: 10 }), Type.Null()]),
  histogram: Type.Union([Type.Array(Type.Number(), { minItems: 10, maxItems: 10 }), Type.Null()]),
  createdAt: Type.String(),
})

export const AddImageQuery = Type.Object({ group: Type.Optional(Name) }, { additionalProperties: false })
export type AddImageQuery = Static<typeof AddImageQuery>

export const AddImageUrlBody = Type.Object(
  {
    url: Type.String({ minLength: 1, maxLength: 4096, description: 'http(s) URL, fetched once; the same URL again returns the stored image' }),
    group: Type.Optional(Name),
  },
  { additionalProperties: false },
)
export type AddImageUrlBody = Static<typeof AddImageUrlBody>

export const AddImageResponse = Type.Object({
  image: LabelImage,
  created: Type.Boolean({ description: 'false when these bytes (or this URL) were already stored' }),
})

export const ImageIdParams = Type.Object({ id: Sha256 })
export type ImageIdParams = Static<typeof ImageIdParams>

export const ListImagesQuery = Type.Object({ after: Type.Optional(Cursor), limit: Type.Optional(Limit) }, { additionalProperties: false })
export type ListImagesQuery = Static<typeof ListImagesQuery>

export const ListImagesResponse = Type.Object({ images: Type.Array(LabelImage), next: Type.Union([Type.Integer(), Type.Null()]) })

export const NextQuery = Type.Object(
  {
    rater: Name,
    skip: Type.Optional(Type.String({ pattern: '^[0-9a-f]{64}(,[0-9a-f]{64}){0,49}$', description: 'Comma-separated image ids to pass over (at most 50)' })),
  },
  { additionalProperties: false },
)
export type NextQuery = Static<typeof NextQuery>

export const NextResponse = Type.Object({
  image: Type.Union([LabelImage, Type.Null()], { description: 'null when the rater has rated every image' }),
  remaining: Type.Integer({ description: 'Images this rater has not rated yet' }),
})

export const RatingBody = Type.Object(
  {
    imageId: Sha256,
    rater: Name,
    rating: Type.Optional(Type.Integer({ minimum: 1, maximum: 10, description: 'A score 1..10' })),
    histogram: Type.Optional(
      Type.Array(Type.Number({ minimum: 0 }), { minItems: 10, maxItems: 10, description: 'Votes for the scores 1..10 (e.g. from AVA)' }),
    ),
  },
  { additionalProperties: false, description: 'Send exactly one of rating and histogram' },
)
export type RatingBody = Static<typeof RatingBody>

export const RatingResponse = Type.Object({
  rating: Rating,
  created: Type.Boolean({ description: 'false when it replaced this rater’s earlier rating of the image' }),
})

export const RatingIdParams = Type.Object({ id: Type.String({ pattern: '^[1-9][0-9]{0,14}$', description: 'Rating id' }) })
export type RatingIdParams = Static<typeof RatingIdParams>

export const ListRatingsQuery = Type.Object(
  { after: Type.Optional(Cursor), limit: Type.Optional(Limit), rater: Type.Optional(Name), imageId: Type.Optional(Sha256) },
  { additionalProperties: false },
)
export type ListRatingsQuery = Static<typeof ListRatingsQuery>

export const ListRatingsResponse = Type.Object({ ratings: Type.Array(Rating), next: Type.Union([Type.Integer(), Type.Null()]) })

export const ExportQuery = Type.Object(
  { format: Type.Optional(Type.Union([Type.Literal('jsonl'), Type.Literal('csv')], { default: 'jsonl' })) },
  { additionalProperties: false },
)
export type ExportQuery = Static<typeof ExportQuery>

const Nullable = (t: ReturnType<typeof Type.Number>) => Type.Union([t, Type.Null()])

export const SummaryResponse = Type.Object({
  images: Type.Integer(),
  labelledImages: Type.Integer(),
  ratings: Type.Integer(),
  raters: Type.Array(Type.Object({ rater: Type.String(), ratings: Type.Integer() })),
  ratingHistogram: Type.Array(Type.Integer(), { description: 'Integer ratings per score 1..10' }),
  histogramLabels: Type.Integer({ description: 'Labels given as vote histograms' }),
  meanScore: Nullable(Type.Number()),
  agreement: Type.Object(
    {
      images: Type.Integer({ description: 'Images rated by two raters or more' }),
      pairs: Type.Integer({ description: 'Pairs of ratings of one image by different raters' }),
      meanAbsDiff: Nullable(Type.Number({ description: 'Mean |a − b| over the pairs' })),
      within1: Nullable(Type.Number({ description: 'Fraction of pairs at most 1 apart' })),
      exact: Nullable(Type.Number({ description: 'Fraction of pairs that agree exactly' })),
    },
    { description: 'How much raters agree where several rated one image' },
  ),
  ratingStd: Type.Object(
    {
      sigma: Type.Number(),
      source: Type.String(),
      dof: Type.Integer(),
      raw: Nullable(Type.Number()),
    },
    { description: 'The spread σ fine-tuning gives a single rating: pooled within-image std of raters, or the default' },
  ),
})
