import { readFile } from 'node:fs/promises'
import { Type, type Static } from '@sinclair/typebox'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import { FEATURE_MAP_SIZE, FEATURE_SIZE } from './architecture.js'
import { GRAPH_NAMES } from './onnx-graph.js'

/**
 * How the model wants its pixels. The service reads these instead of hard-coding
 * idealo's choices, so a future model can ask for another resize or normalisation.
 */
export const InputSpec = Type.Object({
  name: Type.String({ description: 'ONNX input name' }),
  width: Type.Integer({ minimum: 1 }),
  height: Type.Integer({ minimum: 1 }),
  channels: Type.Literal(3),
  layout: Type.Literal('NHWC'),
  colorspace: Type.Literal('srgb'),
  resize: Type.Union([Type.Literal('nearest')], {
    description: 'nearest: PIL/Keras convention, output i takes source floor((i + 0.5) * in / out)',
  }),
  fit: Type.Union([Type.Literal('fill')], { description: 'fill: stretch to size ignoring aspect ratio, no crop' }),
  normalization: Type.Object(
    { scale: Type.Number(), offset: Type.Number() },
    { description: 'x * scale + offset, applied to 0..255 values' },
  ),
})

export const OutputSpec = Type.Object({
  scores: Type.Object({
    name: Type.String(),
    bins: Type.Integer({ minimum: 2 }),
    values: Type.Array(Type.Number(), { description: 'score value of each bin, e.g. 1..10' }),
  }),
  features: Type.Optional(Type.Object({ name: Type.String(), size: Type.Integer({ minimum: 1 }) })),
  featureMap: Type.Optional(
    Type.Object(
      {
        name: Type.String(),
        height: Type.Integer({ minimum: 1 }),
        width: Type.Integer({ minimum: 1 }),
        channels: Type.Integer({ minimum: 1 }),
        layout: Type.Literal('NCHW'),
      },
      { description: 'the last feature map before global pooling (after the final ReLU6), for /explain; absent in model files made before it existed' },
    ),
  ),
})

/** What `models import` read from the user's Keras file. */
export const KerasImport = Type.Object({
  fileName: Type.String(),
  layout: Type.Union([Type.Literal('save_weights'), Type.Literal('model')], { description: 'save_weights HDF5, or a full model.save HDF5 (weights under model_weights/)' }),
  kerasVersion: Type.Optional(Type.String({ description: 'the file\'s keras_version attribute' })),
  headLayer: Type.String({ description: 'the Keras layer the Dense(10) head was read from' }),
  padding: Type.Union([Type.Literal('keras'), Type.Literal('symmetric')], { description: 'stride-2 padding the converter used' }),
  paddingReason: Type.String({ description: 'what in the file decided the padding' }),
})

/** The conversion proof `models import` ran before installing (src/model-tools/conversion-proof.ts). */
export const ConversionProofRecord = Type.Object({
  inputs: Type.Union([Type.Literal('photos'), Type.Literal('synthetic')], { description: 'photos: --check photos; synthetic: seeded photo-like tensors' }),
  count: Type.Integer({ minimum: 1 }),
  seed: Type.Optional(Type.Integer({ description: 'seed of the synthetic inputs' })),
  photos: Type.Optional(Type.Array(Type.String(), { description: 'file names of the photos used' })),
  maxAbsDeltaP: Type.Number({ description: 'largest |p_onnx - p_reference| over all bins and inputs' }),
  maxAbsDeltaMean: Type.Number({ description: 'largest |mean_onnx - mean_reference| over the inputs' }),
  float32ReferenceMaxAbsDeltaP: Type.Optional(Type.Number({ description: 'largest |p| distance of the reference computed in float32 from the float64 one: the rounding floor of these weights' })),
  float32ReferenceMaxAbsDeltaMean: Type.Optional(Type.Number({ description: 'the same for the mean score' })),
  toleranceP: Type.Number({ description: 'the |Δp| accepted: a floor plus a multiple of float32ReferenceMaxAbsDeltaP' }),
  toleranceMean: Type.Number(),
  seconds: Type.Number({ description: 'wall time of the proof (float64 and float32 references, ONNX Runtime)' }),
  provider: Type.String(),
})

export const Provenance = Type.Object({
  kind: Type.Union([Type.Literal('synthetic'), Type.Literal('idealo-keras'), Type.Literal('finetuned'), Type.Literal('keras-import')]),
  seed: Type.Optional(Type.Integer()),
  sourceUrl: Type.Optional(Type.String()),
  sourceGitBlobSha1: Type.Optional(Type.String()),
  sourceSha256: Type.Optional(Type.String({ description: 'sha256 of the file this model was made from (a download, or the float32 model of a float16 variant)' })),
  baseModel: Type.Optional(Type.String()),
  dataSha256: Type.Optional(Type.String()),
  metrics: Type.Optional(Type.Record(Type.String(), Type.Unknown())),
  tool: Type.String({ description: 'what produced the file, with version' }),
  createdAt: Type.String({ pattern: '^[0-9]{4}-[0-9]{2}-[0-9]{2}T', description: 'ISO 8601 time' }),
  notes: Type.Optional(Type.String()),
  kerasImport: Type.Optional(KerasImport),
  conversionProof: Type.Optional(ConversionProofRecord),
})

export const ModelManifest = Type.Object({
  id: Type.String({ pattern: '^[a-z][a-z0-9-]*$', description: 'model id used in requests, e.g. aesthetic' }),
  version: Type.String({ pattern: '^[A-Za-z0-9._-]+$' }),
  task: Type.Union([Type.Literal('aesthetic'), Type.Literal('technical')]),
  architecture: Type.Literal('mobilenet_v1'),
  file: Type.String({ description: 'ONNX file, relative to the manifest' }),
  sha256: Type.String({ pattern: '^[0-9a-f]{64}$' }),
  synthetic: Type.Boolean({ description: 'true for seeded random weights: scores mean nothing' }),
  precision: Type.Optional(
    Type.Union([Type.Literal('float32'), Type.Literal('float16')], {
      description: 'weights and activations; float16 variants keep float32 inputs/outputs and are derived from a float32 model (provenance.baseModel)',
    }),
  ),
  input: InputSpec,
  output: OutputSpec,
  provenance: Provenance,
})
export type ModelManifest = Static<typeof ModelManifest>
export type ModelPrecision = NonNullable<ModelManifest['precision']>

/** Manifests written before float16 variants existed are float32. */
export function manifestPrecision(manifest: ModelManifest): ModelPrecision {
  return manifest.precision ?? 'float32'
}

const manifestCheck = TypeCompiler.Compile(ModelManifest)

/** The idealo NIMA input contract (Keras load_img nearest resize, x/127.5 - 1). */
export function idealoInputSpec(): Static<typeof InputSpec> {
  return {
    name: 'input',
    width: 224,
    height: 224,
    channels: 3,
    layout: 'NHWC',
    colorspace: 'srgb',
    resize: 'nearest',
    fit: 'fill',
    normalization: { scale: 1 / 127.5, offset: -1 },
  }
}

/** `graphOutputs`: the ONNX file's output names; the feature map is declared only when the file has it. */
export function nimaOutputSpec(graphOutputs: readonly string[]): Static<typeof OutputSpec> {
  return {
    scores: { name: 'scores', bins: 10, values: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10] },
    features: { name: 'features', size: 1024 },
    ...(graphOutputs.includes(GRAPH_NAMES.featureMap)
      ? { featureMap: { name: GRAPH_NAMES.featureMap, height: FEATURE_MAP_SIZE, width: FEATURE_MAP_SIZE, channels: FEATURE_SIZE, layout: 'NCHW' as const } }
      : {}),
  }
}

export function parseManifest(value: unknown, where: string): ModelManifest {
  if (manifestCheck.Check(value)) return value
  const problems = [...manifestCheck.Errors(value)].slice(0, 5).map((e) => `${e.path || '/'}: ${e.message}`)
  throw new Error(`invalid model manifest ${where}: ${problems.join('; ')}`)
}

export async function readManifest(path: string): Promise<ModelManifest> {
  const text = await readFile(path, 'utf8')
  return parseManifest(JSON.parse(text), path)
}
