import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { NimaError } from '../../errors.js'
import { handleError, type ErrorSender } from '../../http/error-handler.js'
import { scoringRequest, withDeadline } from '../../http/request-lifecycle.js'
import type { ScoreSummary } from '../../scoring/distribution.js'
import type { NimaModel } from '../../scoring/nima-model.js'
import type { Scorer } from '../../scoring/scorer.js'
import { mapPool } from '../../util/map-pool.js'
import { scoringSession, type RouteContext } from '../context.js'
import { BinaryReader, HEADER_LENGTH, frameResponse, splitBody } from './binary-body.js'
import {
  InferRequest,
  InferResponse,
  ModelMetadata,
  ModelParams,
  ModelReady,
  ModelVersionParams,
  OipError,
  ServerLive,
  ServerMetadata,
  ServerReady,
} from './schemas.js'
import { PLATFORM, signatureOf } from './signature.js'
import { outputTensors, readModelInput, requestedOutputs, type ModelInput } from './tensors.js'

export interface OipOptions extends RouteContext {
  /** What GET /v2 names: this service and its version. */
  server: { name: string; version: string }
}

/** The protocol extensions served here (GET /v2 lists them, as Triton does). */
const EXTENSIONS = ['binary_tensor_data']

/**
 * The Open Inference Protocol (KServe v2) REST API under /v2, beside /score and /rank on
 * the same port (docs/oip.md): health, server and model metadata, model readiness, and
 * inference. Each loaded model is a protocol model named by its id, at its loaded version.
 *
 * A thin adapter: /infer reads the request's tensors (tensors.ts) and hands them to the
 * same paths as /score, under the same lifecycle (in flight, deadline, client gone, model
 * lease): encoded images to the scoring session (score cache, admission, decoding, the
 * model's micro-batcher), preprocessed rows to `Scorer.scoreTensor` (admission, the
 * micro-batcher). Auth, the upload budget and the metrics are the app's, as for any route;
 * the rate limit covers /infer only. Errors keep their NIMA code and status, in the
 * protocol's `{"error": "..."}` shape.
 */
export default async function oipRoutes(app: FastifyInstance, opts: OipOptions) {
  const { config, state, metrics } = opts
  app.setErrorHandler((err, request, reply) => handleError(err, request, reply, metrics, sendOipError))
  app.setNotFoundHandler((request, reply) =>
    sendOipError(reply, request, new NimaError('NIMA_NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0]}`), metrics),
  )

  // One reader for every body, whatever its Content-Type (Triton's clients send none with
  // binary data): the JSON part is parsed here and validated against InferRequest by the
  // route schema like any JSON body; the binary part waits beside it for tensors.ts.
  // Its limits tell the upload routes' story (src/http/image-body.ts): each image at most
  // BODY_LIMIT_BYTES, at most RANK_MAX_IMAGES of them (tensors.ts), the body at most
  // RANK_UPLOAD_MAX_BYTES, which the upload budget reserves. The framing is the protocol's,
  // not a form's, so the body keeps this parser of its own, which fastify runs over the
  // whole body before the handler (no part is left unread behind a fault, as in a form).
  const binaryParts = new WeakMap<FastifyRequest, Buffer>()
  app.removeAllContentTypeParsers()
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: config.RANK_UPLOAD_MAX_BYTES }, (request, body, done) => {
    try {
      const { json, binary } = splitBody(body as Buffer, request.headers[HEADER_LENGTH], config.BODY_LIMIT_BYTES)
      const parsed: unknown = JSON.parse(json.toString('utf8'))
      binaryParts.set(request, binary)
      done(null, parsed)
    } catch (err) {
      done(err instanceof SyntaxError ? new NimaError('NIMA_INVALID_REQUEST', `the inference request is not valid JSON: ${err.message}`) : (err as Error), undefined)
    }
  })

  const routes = app.withTypeProvider<TypeBoxTypeProvider>()
  const probe = { public: true, rateLimit: false } as const
  const errors = { '4xx': OipError, '5xx': OipError }

  routes.get('/', { prefixTrailingSlash: 'no-slash', config: { rateLimit: false }, schema: { summary: 'OIP server metadata', tags: ['oip'], response: { 200: ServerMetadata, ...errors } } }, async () => ({
    name: opts.server.name,
    version: opts.server.version,
    extensions: EXTENSIONS,
  }))
  routes.get('/health/live', { config: probe, schema: { summary: 'OIP server liveness', tags: ['oip'], response: { 200: ServerLive } } }, async () => ({ live: true }))
  routes.get('/health/ready', { config: probe, schema: { summary: 'OIP server readiness: 503 while models load and while draining', tags: ['oip'], response: { 200: ServerReady, ...errors } } }, async () => {
    state.requireScorer()
    return { ready: true }
  })

  const metadata = async (request: FastifyRequest<{ Params: { name: string; version?: string } }>) => {
    const model = findModel(state.requireScorer(), request.params)
    const { inputs, outputs } = signatureOf(model)
    const { id, version, task, synthetic, provider } = model.info
    return { name: id, versions: [version], platform: PLATFORM, inputs, outputs, properties: { task, synthetic: String(synthetic), provider } }
  }
  const ready = async (request: FastifyRequest<{ Params: { name: string; version?: string } }>) => ({
    name: findModel(state.requireScorer(), request.params).info.id,
    ready: true,
  })
  for (const [suffix, params] of [['', ModelParams], ['/versions/:version', ModelVersionParams]] as const) {
    const path = `/models/:name${suffix}`
    routes.get(path, { config: { rateLimit: false }, schema: { summary: 'OIP model metadata: inputs and outputs with datatypes and shapes', tags: ['oip'], params, response: { 200: ModelMetadata, ...errors } } }, metadata)
    routes.get(`${path}/ready`, { config: { rateLimit: false }, schema: { summary: 'OIP model readiness', tags: ['oip'], params, response: { 200: ModelReady, ...errors } } }, ready)
    routes.post(
      `${path}/infer`,
      {
        // Binary bodies may carry many images: the upload budget reserves up to RANK_UPLOAD_MAX_BYTES, as for /rank uploads.
        config: { uploadLimit: config.RANK_UPLOAD_MAX_BYTES },
        schema: {
          summary: 'OIP inference: images (BYTES) or preprocessed tensors (FP32) in, score distributions and means out',
          description:
            'Send one input: `image` (BYTES, shape [N]: encoded images, base64 strings in JSON) or `tensor` (FP32, shape [N, 224, 224, 3]: the Keras preprocessing rule\'s values in [-1, 1]). JSON, or the binary tensor data extension (`Inference-Header-Content-Length`). Outputs: `distribution` (FP32 [N, 10]) and `mean` (FP32 [N]), binary on request.',
          tags: ['oip'],
          params,
          body: InferRequest,
          response: { 200: InferResponse, ...errors },
        },
      },
      async (request, reply) =>
        scoringRequest(opts, request, reply, async (signals, scorer) => {
          const model = findModel(scorer, request.params)
          const body = request.body
          const input = readModelInput(body, new BinaryReader(binaryParts.get(request) ?? Buffer.alloc(0)), model.tensorSpec, {
            maxImages: config.RANK_MAX_IMAGES,
            maxImageBytes: config.BODY_LIMIT_BYTES,
          })
          const requested = requestedOutputs(body)
          const scores = await withDeadline(scoreAll(opts, scorer, model, input, signals.signal), signals.deadline)
          const { outputs, binary } = outputTensors(requested, scores, model.manifest.output.scores.bins)
          const response: InferResponse = {
            model_name: model.info.id,
            model_version: model.info.version,
            ...(body.id !== undefined ? { id: body.id } : {}),
            // Images were decoded here, with the deployment's preprocessing; a tensor came preprocessed.
            parameters: { synthetic: model.info.synthetic, ...(input.kind === 'image' ? { preprocess: scorer.preprocess } : {}) },
            outputs,
          }
          if (binary.length === 0) return reply.send(response)
          const framed = frameResponse(response, binary)
          // A Buffer is sent as it is, past the JSON serializer the 200 schema types the reply for.
          return reply.type('application/octet-stream').header(HEADER_LENGTH, String(framed.headerLength)).send(framed.body as never)
        }),
    )
  }
}

/** The model a path names: its id, and if given the version loaded; 404 otherwise. */
function findModel(scorer: Scorer, { name, version }: { name: string; version?: string }): NimaModel {
  const model = scorer.models.get(name)
  if (!model) throw new NimaError('NIMA_MODEL_NOT_FOUND', `no model ${JSON.stringify(name)} is loaded; models: ${[...scorer.models.keys()].join(', ')}`)
  if (version !== undefined && version !== model.info.version) {
    throw new NimaError('NIMA_MODEL_NOT_FOUND', `model ${JSON.stringify(name)} is loaded at version ${JSON.stringify(model.info.version)}, not ${JSON.stringify(version)}`)
  }
  return model
}

/**
 * Each image's scores, in input order, through the paths /score and /rank use, as many at
 * once as /rank scores its uploads. The first failure fails the request (one request, one
 * answer) and drops the images still waiting.
 */
async function scoreAll(ctx: RouteContext, scorer: Scorer, model: NimaModel, input: ModelInput, requestSignal: AbortSignal): Promise<ScoreSummary[]> {
  const failed = new AbortController()
  const signal = AbortSignal.any([requestSignal, failed.signal])
  let first: { err: unknown } | undefined
  // Every image settles before the request answers (the rest quickly, once `failed` has
  // aborted), so none is still at work on a scorer whose lease the request has given back.
  const each = async <T>(items: readonly T[], score: (item: T) => Promise<ScoreSummary>): Promise<ScoreSummary[]> => {
    const results = await mapPool(items, ctx.config.RANK_FETCH_CONCURRENCY, async (item) => {
      try {
        return await score(item)
      } catch (err) {
        if (!first) {
          first = { err }
          failed.abort(err)
        }
        return undefined
      }
    })
    if (first) throw first.err
    return results as ScoreSummary[]
  }
  if (input.kind === 'tensor') return each(input.rows, (row) => scorer.scoreTensor(row, model, signal))
  const session = scoringSession(ctx, scorer, [model], undefined, signal)
  return each(input.images, async (bytes) => (await session.bytes(bytes)).score.scores[model.info.id]!)
}

/** The protocol's error shape, `{"error": "<code>: <message>"}`, with the code's status and headers. */
const sendOipError: ErrorSender = (reply: FastifyReply, _request: FastifyRequest, err: NimaError, metrics) => {
  metrics.errors.inc({ code: err.code })
  return reply.code(err.statusCode).headers(err.headers).type('application/json').send({ error: `${err.code}: ${err.message}` })
}
