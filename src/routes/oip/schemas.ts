import { Type, type Static } from '@sinclair/typebox'

/**
 * The Open Inference Protocol's REST payloads (KServe v2, docs/oip.md), as TypeBox schemas:
 * validation, types and openapi.yaml. Field names are the protocol's (snake_case). Tensor
 * `data` is only checked to be an array here: its elements are checked, counted and
 * converted as they are read (tensors.ts), not walked twice by the validator.
 */

/** A parameter value: the protocol allows strings, numbers and booleans. */
const ParameterValue = Type.Union([Type.String(), Type.Number(), Type.Boolean()])

const TensorShape = Type.Array(Type.Integer({ minimum: 0 }), { maxItems: 8, description: 'Dimensions; a variable one is -1 in metadata' })

export const InferRequestInput = Type.Object({
  name: Type.String({ maxLength: 256 }),
  shape: TensorShape,
  datatype: Type.String({ maxLength: 16 }),
  parameters: Type.Optional(
    Type.Object(
      {
        binary_data_size: Type.Optional(
          Type.Integer({ minimum: 0, description: 'Binary tensor data extension: this input\'s bytes follow the JSON, in input order' }),
        ),
      },
      { additionalProperties: ParameterValue },
    ),
  ),
  data: Type.Optional(Type.Array(Type.Unknown(), { description: 'Row-major elements, flat or nested; absent when the input is sent as binary data' })),
})
export type InferRequestInput = Static<typeof InferRequestInput>

export const InferRequestOutput = Type.Object({
  name: Type.String({ maxLength: 256 }),
  parameters: Type.Optional(
    Type.Object(
      { binary_data: Type.Optional(Type.Boolean({ description: 'Return this output as binary data after the JSON' })) },
      { additionalProperties: ParameterValue },
    ),
  ),
})

export const InferRequest = Type.Object(
  {
    id: Type.Optional(Type.String({ maxLength: 256, description: 'Echoed in the response' })),
    parameters: Type.Optional(
      Type.Object(
        { binary_data_output: Type.Optional(Type.Boolean({ description: 'Return every output as binary data unless an output says otherwise' })) },
        { additionalProperties: ParameterValue },
      ),
    ),
    inputs: Type.Array(InferRequestInput, { minItems: 1, maxItems: 8 }),
    outputs: Type.Optional(Type.Array(InferRequestOutput, { maxItems: 8 })),
  },
  {
    description:
      'The JSON inference request. With the binary tensor data extension the body is this JSON, `Inference-Header-Content-Length` bytes long, followed by the binary data of each input that has `parameters.binary_data_size`.',
  },
)
export type InferRequest = Static<typeof InferRequest>

export const InferResponseOutput = Type.Object({
  name: Type.String(),
  shape: Type.Array(Type.Integer({ minimum: 0 })),
  datatype: Type.String(),
  parameters: Type.Optional(Type.Object({ binary_data_size: Type.Integer({ minimum: 0 }) })),
  data: Type.Optional(Type.Array(Type.Number(), { description: 'Row-major, flat; absent when the output is binary' })),
})
export type InferResponseOutput = Static<typeof InferResponseOutput>

export const InferResponse = Type.Object(
  {
    model_name: Type.String(),
    model_version: Type.String(),
    id: Type.Optional(Type.String()),
    parameters: Type.Object({
      synthetic: Type.Boolean({ description: 'true: the model has seeded random weights and its scores mean nothing' }),
      preprocess: Type.Optional(
        Type.Union([Type.Literal('exact'), Type.Literal('fast')], { description: 'Image (BYTES) inputs: the preprocessing that made their tensors (PREPROCESS); absent for FP32 tensors, preprocessed by the client' }),
      ),
    }),
    outputs: Type.Array(InferResponseOutput),
  },
  {
    description:
      'The JSON inference response. When an output is binary, the body is this JSON (`Inference-Header-Content-Length` bytes, Content-Type application/octet-stream) followed by the binary outputs in order.',
  },
)
export type InferResponse = Static<typeof InferResponse>

export const MetadataTensor = Type.Object({
  name: Type.String(),
  datatype: Type.String(),
  shape: Type.Array(Type.Integer()),
})
export type MetadataTensor = Static<typeof MetadataTensor>

export const ModelMetadata = Type.Object({
  name: Type.String(),
  versions: Type.Array(Type.String()),
  platform: Type.String(),
  inputs: Type.Array(MetadataTensor, { description: 'Send exactly one of them per request' }),
  outputs: Type.Array(MetadataTensor),
  properties: Type.Record(Type.String(), Type.String(), { description: 'task, synthetic, execution provider' }),
})

export const ServerMetadata = Type.Object({ name: Type.String(), version: Type.String(), extensions: Type.Array(Type.String()) })
export const ServerLive = Type.Object({ live: Type.Boolean() })
export const ServerReady = Type.Object({ ready: Type.Boolean() })
export const ModelReady = Type.Object({ name: Type.String(), ready: Type.Boolean() })

export const OipError = Type.Object({
  error: Type.String({ description: 'The stable NIMA error code, a colon, and the message (docs/errors.md)' }),
})

export const ModelParams = Type.Object({ name: Type.String({ maxLength: 128 }) })
export const ModelVersionParams = Type.Object({ name: Type.String({ maxLength: 128 }), version: Type.String({ maxLength: 128 }) })
