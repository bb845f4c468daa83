import { Type, type Static } from '@sinclair/typebox'
import { ImageInfo, ModelInfo, ScoreSummary } from './schemas.js'

/**
 * Schemas of POST /explain. Kept apart from schemas.ts so the feature stays in its own
 * files; the shared ones are referenced by $id.
 */
const grid = (description: string) => Type.Array(Type.Array(Type.Number()), { description: `${description}; rows top to bottom, each left to right (7×7 for NIMA)` })

export const ExplainQuery = Type.Object(
  {
    models: Type.Optional(
      Type.String({ pattern: '^[a-z][a-z0-9-]*(,[a-z][a-z0-9-]*)*$', description: 'Comma-separated model ids (default: aesthetic,technical)' }),
    ),
    // Query strings are not type-coerced by this service's validator.
    logits: Type.Optional(Type.Union([Type.Literal('true'), Type.Literal('false')], { description: 'true: add the ten logit maps Mᵢ and the biases bᵢ of each model (JSON only)' })),
    format: Type.Optional(
      Type.Union([Type.Literal('json'), Type.Literal('png')], { description: 'png: the photo at display size with each model’s score map over it and a legend (default json)' }),
    ),
  },
  { additionalProperties: false },
)
export type ExplainQuery = Static<typeof ExplainQuery>

export const ExplainUrlBody = Type.Object(
  { url: Type.String({ minLength: 1, maxLength: 4096, description: 'http(s) URL of the image' }) },
  { additionalProperties: false },
)

export const ModelExplanation = Type.Object({
  model: Type.Ref(ModelInfo),
  score: Type.Ref(ScoreSummary),
  grid: Type.Object({
    height: Type.Integer(),
    width: Type.Integer(),
    cellPixels: Type.Object({ x: Type.Number(), y: Type.Number() }, { description: 'Size of one cell in the model input (224×224): 32×32' }),
  }),
  scoreMap: grid('S(y,x) = Σᵢ pᵢ(vᵢ − E)·Mᵢ(y,x): positive cells push the mean score up, negative ones down (first order; S divided by the number of cells is the change of the mean per unit of the cell’s features)'),
  maxAbs: Type.Number({ description: 'Largest |S| on the grid' }),
  logitMaps: Type.Optional(Type.Array(grid('one map'), { description: 'Mᵢ(y,x) = Σₖ Wᵢₖ fₖ(y,x) per score bin; grid mean of Mᵢ plus bias[i] is the logit zᵢ' })),
  bias: Type.Optional(Type.Array(Type.Number(), { description: 'bᵢ of the Dense head' })),
})

export const ExplainResponse = Type.Object({
  requestId: Type.String(),
  image: Type.Ref(ImageInfo),
  explanations: Type.Record(Type.String(), ModelExplanation),
  timings: Type.Object({ fetchMs: Type.Optional(Type.Number()), decodeMs: Type.Number(), inferenceMs: Type.Number(), totalMs: Type.Number() }),
})
