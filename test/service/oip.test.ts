import { request as httpRequest } from 'node:http'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { decodeImage } from '../../src/imaging/decode.js'
import { normalizationTable, writeTensor } from '../../src/imaging/tensor.js'
import { sharedImages } from '../helpers/paths.js'
import { startTestService } from '../helpers/service.js'

// The Open Inference Protocol (KServe v2) routes of the real service, over real HTTP:
// metadata, probes, /infer with encoded images (JSON base64 and the binary tensor data
// extension) and with preprocessed FP32 tensors, each against /score for the same photo,
// and every kind of bad input with its status and protocol-shaped error.

const jpegPath = join(sharedImages, 'idealo/42039.jpg')
const pngPath = join(sharedImages, 'natural/coffee.png')
const jpeg = readFileSync(jpegPath)
const png = readFileSync(pngPath)
const MODELS = ['aesthetic', 'technical'] as const
const BODY_LIMIT = 3_000_000
const UPLOAD_MAX = 8_000_000

// Score cache off: every /infer decodes and infers, so agreeing with /score proves the path, not the cache.
const svc = await startTestService({ SCORE_CACHE: 'off', BODY_LIMIT_BYTES: BODY_LIMIT, RANK_UPLOAD_MAX_BYTES: UPLOAD_MAX, RANK_MAX_IMAGES: 4 })
t.teardown(() => svc.server.shutdown())
const app = svc.server.app

/** The model's input tensor for a photo by the Keras rule (src/imaging/tensor.ts), as a client that preprocesses would send it. */
async function preprocess(bytes: Buffer): Promise<Float32Array> {
  const image = await decodeImage(bytes, { maxInputPixels: 64_000_000 })
  const out = new Float32Array(224 * 224 * 3)
  writeTensor(image, { width: 224, height: 224, lut: normalizationTable(1 / 127.5, -1) }, out)
  return out
}

/** A body in the binary tensor data extension's framing, and its header. */
function framed(json: object, ...binary: Buffer[]): { body: Buffer; headers: Record<string, string> } {
  const head = Buffer.from(JSON.stringify(json))
  return { body: Buffer.concat([head, ...binary]), headers: { 'inference-header-content-length': String(head.length) } }
}

/** BYTES elements in binary form: a uint32 LE length before each. */
function bytesTensor(...elements: Buffer[]): Buffer {
  return Buffer.concat(elements.flatMap((e) => [Buffer.from(new Uint32Array([e.length]).buffer), e]))
}

/** A POST over a plain node:http socket (no fetch, no inject): what a Triton client does. */
function rawPost(path: string, body: Buffer, headers: Record<string, string>): Promise<{ status: number; headers: Record<string, string | string[] | undefined>; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(svc.url + path, { method: 'POST', headers: { ...headers, 'content-length': String(body.length) } }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(body)
  })
}

/** A binary response split into its JSON and each binary output as FP32 values. */
function parseBinary(res: { headers: Record<string, string | string[] | undefined>; body: Buffer }): { json: any; tensors: Record<string, Float32Array> } {
  const n = Number(res.headers['inference-header-content-length'])
  const json = JSON.parse(res.body.subarray(0, n).toString())
  const tensors: Record<string, Float32Array> = {}
  let offset = n
  for (const o of json.outputs) {
    const size = o.parameters?.binary_data_size
    if (size === undefined) continue
    const bytes = res.body.subarray(offset, offset + size)
    tensors[o.name] = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + size))
    offset += size
  }
  if (offset !== res.body.length) throw new Error(`${res.body.length - offset} bytes after the binary outputs`)
  return { json, tensors }
}

const infer = (model: string, payload: object | string | Buffer, headers: Record<string, string> = {}) =>
  app.inject({
    method: 'POST',
    url: `/v2/models/${model}/infer`,
    payload: typeof payload === 'object' && !Buffer.isBuffer(payload) ? JSON.stringify(payload) : payload,
    headers: { 'content-type': 'application/json', ...headers },
  })

// What /score says for the two photos, per model: the reference every /infer is held to.
const reference: Record<string, Record<string, { mean: number; distribution: number[] }>> = {}
for (const [name, bytes] of [['jpeg', jpeg], ['png', png]] as const) {
  const res = await app.inject({ method: 'POST', url: '/score', payload: bytes, headers: { 'content-type': 'application/octet-stream' } })
  if (res.statusCode !== 200) throw new Error(`/score ${name}: ${res.statusCode} ${res.body}`)
  reference[name] = res.json().scores
}

function close(t: Test, got: ArrayLike<number>, want: readonly number[], what: string): void {
  t.equal(got.length, want.length, `${what}: ${want.length} values`)
  const delta = Math.max(...want.map((w, i) => Math.abs(got[i]! - w)))
  t.ok(delta <= 1e-5, `${what}: max |Δ| ${delta.toExponential(2)} ≤ 1e-5`)
}

/** An error in the protocol's shape: `{"error": "<code>: …"}` and nothing else, with the status. */
function protocolError(t: Test, res: { statusCode: number; json: () => any; headers: Record<string, unknown> }, status: number, code: string, message?: RegExp): void {
  t.equal(res.statusCode, status, `status ${status}`)
  const body = res.json()
  t.same(Object.keys(body), ['error'], 'the body is {"error": …}')
  t.match(body.error, new RegExp(`^${code}: `), `error starts with ${code}`)
  if (message) t.match(body.error, message)
  t.ok(res.headers['x-request-id'], 'x-request-id header')
}

t.test('server metadata and probes', async (t) => {
  const meta = await app.inject('/v2')
  t.equal(meta.statusCode, 200)
  t.same(meta.json(), { name: 'nima-serve', version: meta.json().version, extensions: ['binary_tensor_data'] })
  t.match(meta.json().version, /^\d+\.\d+\.\d+/)
  t.same((await app.inject('/v2/health/live')).json(), { live: true })
  const ready = await app.inject('/v2/health/ready')
  t.equal(ready.statusCode, 200)
  t.same(ready.json(), { ready: true })
  protocolError(t, await app.inject('/v2/no/such/route'), 404, 'NIMA_NOT_FOUND')
})

t.test('model metadata: inputs and outputs with datatypes and shapes, with and without the version', async (t) => {
  for (const id of MODELS) {
    const res = await app.inject(`/v2/models/${id}`)
    t.equal(res.statusCode, 200)
    const body = res.json()
    t.equal(body.name, id)
    t.equal(body.platform, 'onnx_onnxv1')
    t.same(body.inputs, [
      { name: 'image', datatype: 'BYTES', shape: [-1] },
      { name: 'tensor', datatype: 'FP32', shape: [-1, 224, 224, 3] },
    ])
    t.same(body.outputs, [
      { name: 'distribution', datatype: 'FP32', shape: [-1, 10] },
      { name: 'mean', datatype: 'FP32', shape: [-1] },
    ])
    t.equal(body.properties.synthetic, 'true', 'the synthetic models say so')
    t.equal(body.versions.length, 1)
    const version = body.versions[0]
    t.same((await app.inject(`/v2/models/${id}/versions/${version}`)).json(), body, 'the same at its version')
    t.same((await app.inject(`/v2/models/${id}/ready`)).json(), { name: id, ready: true })
    t.same((await app.inject(`/v2/models/${id}/versions/${version}/ready`)).json(), { name: id, ready: true })
    protocolError(t, await app.inject(`/v2/models/${id}/versions/nope`), 404, 'NIMA_MODEL_NOT_FOUND', /loaded at version/)
    protocolError(t, await app.inject(`/v2/models/${id}/versions/nope/ready`), 404, 'NIMA_MODEL_NOT_FOUND')
  }
  protocolError(t, await app.inject('/v2/models/nope'), 404, 'NIMA_MODEL_NOT_FOUND', /models: aesthetic, technical/)
  protocolError(t, await app.inject('/v2/models/nope/ready'), 404, 'NIMA_MODEL_NOT_FOUND')
})

t.test('JPEG as a binary BYTES tensor over a real socket: the distribution /score gives', async (t) => {
  for (const id of MODELS) {
    const version = (await app.inject(`/v2/models/${id}`)).json().versions[0]
    const { body, headers } = framed(
      {
        id: 'req-1',
        inputs: [{ name: 'image', datatype: 'BYTES', shape: [1], parameters: { binary_data_size: jpeg.length + 4 } }],
        parameters: { binary_data_output: true },
      },
      bytesTensor(jpeg),
    )
    // No Content-Type, as Triton's HTTP client sends binary requests.
    const res = await rawPost(`/v2/models/${id}/versions/${version}/infer`, body, headers)
    t.equal(res.status, 200, res.status === 200 ? 'ok' : res.body.toString())
    t.equal(res.headers['content-type'], 'application/octet-stream')
    const { json, tensors } = parseBinary(res)
    t.same({ ...json, outputs: undefined }, { model_name: id, model_version: version, id: 'req-1', parameters: { synthetic: true, preprocess: 'exact' }, outputs: undefined })
    t.same(json.outputs, [
      { name: 'distribution', shape: [1, 10], datatype: 'FP32', parameters: { binary_data_size: 40 } },
      { name: 'mean', shape: [1], datatype: 'FP32', parameters: { binary_data_size: 4 } },
    ])
    close(t, tensors['distribution']!, reference['jpeg']![id]!.distribution, `${id} distribution`)
    close(t, tensors['mean']!, [reference['jpeg']![id]!.mean], `${id} mean`)
  }
})

t.test('FP32 tensors the client preprocessed, binary and JSON: the distribution /score gives', async (t) => {
  const tensor = await preprocess(jpeg)
  const pngTensor = await preprocess(png)
  for (const id of MODELS) {
    // Binary, two images in one request, one output as binary and one as JSON.
    const both = Buffer.concat([Buffer.from(tensor.buffer), Buffer.from(pngTensor.buffer)])
    const { body, headers } = framed(
      {
        inputs: [{ name: 'tensor', datatype: 'FP32', shape: [2, 224, 224, 3], parameters: { binary_data_size: both.length } }],
        outputs: [{ name: 'mean' }, { name: 'distribution', parameters: { binary_data: true } }],
      },
      both,
    )
    const res = await rawPost(`/v2/models/${id}/infer`, body, { ...headers, 'content-type': 'application/octet-stream' })
    t.equal(res.status, 200, res.status === 200 ? 'ok' : res.body.toString())
    const { json, tensors } = parseBinary(res)
    t.same(json.outputs.map((o: any) => o.name), ['mean', 'distribution'], 'outputs in the order asked for')
    const dist = tensors['distribution']!
    close(t, dist.subarray(0, 10), reference['jpeg']![id]!.distribution, `${id} binary FP32, JPEG row`)
    close(t, dist.subarray(10, 20), reference['png']![id]!.distribution, `${id} binary FP32, PNG row`)
    close(t, json.outputs[0].data, [reference['jpeg']![id]!.mean, reference['png']![id]!.mean], `${id} means as JSON`)

    // JSON, nested as [1][224][224][3], values at float32 precision.
    const rows: number[][][] = []
    for (let y = 0; y < 224; y++) {
      const row: number[][] = []
      for (let x = 0; x < 224; x++) {
        const o = (y * 224 + x) * 3
        row.push([0, 1, 2].map((c) => Number(tensor[o + c]!.toPrecision(9))))
      }
      rows.push(row)
    }
    const j = await infer(id, { inputs: [{ name: 'tensor', datatype: 'FP32', shape: [1, 224, 224, 3], data: [rows] }] })
    t.equal(j.statusCode, 200, j.statusCode === 200 ? 'ok' : j.body)
    t.equal(j.headers['content-type'], 'application/json; charset=utf-8')
    const out = j.json().outputs
    t.same(out.map((o: any) => [o.name, o.shape, o.datatype]), [['distribution', [1, 10], 'FP32'], ['mean', [1], 'FP32']])
    close(t, out[0].data, reference['jpeg']![id]!.distribution, `${id} JSON FP32`)
  }
})

t.test('images as base64 BYTES in JSON, several per request, flat or [N, 1]', async (t) => {
  const res = await infer('aesthetic', { inputs: [{ name: 'image', datatype: 'BYTES', shape: [2], data: [jpeg.toString('base64'), png.toString('base64url')] }] })
  t.equal(res.statusCode, 200, res.body)
  const [dist, mean] = res.json().outputs
  close(t, dist.data.slice(0, 10), reference['jpeg']!['aesthetic']!.distribution, 'JPEG (standard base64)')
  close(t, dist.data.slice(10), reference['png']!['aesthetic']!.distribution, 'PNG (URL-safe base64)')
  close(t, mean.data, [reference['jpeg']!['aesthetic']!.mean, reference['png']!['aesthetic']!.mean], 'means')
  const nested = await infer('technical', { inputs: [{ name: 'image', datatype: 'BYTES', shape: [1, 1], data: [[jpeg.toString('base64')]] }] })
  t.equal(nested.statusCode, 200, nested.body)
  close(t, nested.json().outputs[0].data, reference['jpeg']!['technical']!.distribution, 'shape [1, 1], nested data')
})

t.test('bad inputs: each its status and error', async (t) => {
  const b64 = jpeg.toString('base64')
  const image = (extra: object = {}) => ({ name: 'image', datatype: 'BYTES', shape: [1], data: [b64], ...extra })
  const cases: [string, () => Promise<any>, number, string, RegExp?][] = [
    ['wrong shape (tensor without channels)', () => infer('aesthetic', { inputs: [{ name: 'tensor', datatype: 'FP32', shape: [1, 224, 224], data: [] }] }), 400, 'NIMA_INVALID_REQUEST', /shape \[N, 224, 224, 3\]/],
    ['wrong shape (image [1, 2])', () => infer('aesthetic', { inputs: [image({ shape: [1, 2] })] }), 400, 'NIMA_INVALID_REQUEST', /\[N\] or \[N, 1\]/],
    ['shape and data disagree', () => infer('aesthetic', { inputs: [image({ shape: [2] })] }), 400, 'NIMA_INVALID_REQUEST', /holds 2 elements, "data" has 1/],
    ['wrong datatype', () => infer('aesthetic', { inputs: [image({ datatype: 'FP32' })] }), 400, 'NIMA_INVALID_REQUEST', /must be BYTES/],
    ['FP32 data that is not numbers', () => infer('aesthetic', { inputs: [{ name: 'tensor', datatype: 'FP32', shape: [1, 1, 1, 3], data: [] }] }), 400, 'NIMA_INVALID_REQUEST'],
    ['values outside [-1, 1]', () => {
      const values = new Float32Array(224 * 224 * 3).fill(255)
      const { body, headers } = framed({ inputs: [{ name: 'tensor', datatype: 'FP32', shape: [1, 224, 224, 3], parameters: { binary_data_size: values.byteLength } }] }, Buffer.from(values.buffer))
      return infer('aesthetic', body, headers)
    }, 400, 'NIMA_INVALID_REQUEST', /element 0 is 255; preprocessed values lie in \[-1, 1\]/],
    ['not base64', () => infer('aesthetic', { inputs: [image({ data: ['***'] })] }), 400, 'NIMA_INVALID_REQUEST', /not base64/],
    ['unknown input', () => infer('aesthetic', { inputs: [image({ name: 'pixels' })] }), 400, 'NIMA_INVALID_REQUEST', /unknown input "pixels"/],
    ['two inputs', () => infer('aesthetic', { inputs: [image(), image()] }), 400, 'NIMA_INVALID_REQUEST', /send one input/],
    ['unknown output', () => infer('aesthetic', { inputs: [image()], outputs: [{ name: 'std' }] }), 400, 'NIMA_INVALID_REQUEST', /unknown output "std"/],
    ['no inputs', () => infer('aesthetic', { inputs: [] }), 400, 'NIMA_INVALID_REQUEST'],
    ['not JSON', () => infer('aesthetic', '{"inputs": ['), 400, 'NIMA_INVALID_REQUEST', /not valid JSON/],
    ['data nested deeper than the shape', () => infer('aesthetic', { inputs: [image({ data: [[b64]] })] }), 400, 'NIMA_INVALID_REQUEST', /nested deeper than its shape \[1\]/],
    ['both data and binary_data_size', () => infer('aesthetic', { inputs: [image({ parameters: { binary_data_size: 0 } })] }), 400, 'NIMA_INVALID_REQUEST', /both "data" and parameters.binary_data_size/],
    ['neither data nor binary_data_size', () => infer('aesthetic', { inputs: [{ name: 'image', datatype: 'BYTES', shape: [1] }] }), 400, 'NIMA_INVALID_REQUEST', /no "data" and no parameters.binary_data_size/],
    ['one bad image of two fails the request', () => infer('aesthetic', { inputs: [image({ shape: [2], data: [b64, jpeg.subarray(0, 2000).toString('base64')] })] }), 422, 'NIMA_UNDECODABLE_IMAGE'],
    ['unknown model', () => infer('nope', { inputs: [image()] }), 404, 'NIMA_MODEL_NOT_FOUND'],
    ['unknown version', () => app.inject({ method: 'POST', url: '/v2/models/aesthetic/versions/0/infer', payload: { inputs: [image()] } }), 404, 'NIMA_MODEL_NOT_FOUND'],
    ['too many images', () => infer('aesthetic', { inputs: [image({ shape: [5], data: Array(5).fill(b64) })] }), 400, 'NIMA_TOO_MANY_IMAGES', /at most 4/],
    ['no images', () => infer('aesthetic', { inputs: [image({ shape: [0], data: [] })] }), 400, 'NIMA_MISSING_IMAGE'],
    ['undecodable image', () => infer('aesthetic', { inputs: [image({ data: [readFileSync(join(sharedImages, 'idealo/42039.jpg')).subarray(0, 2000).toString('base64')] })] }), 422, 'NIMA_UNDECODABLE_IMAGE'],
    ['header length not a number', () => infer('aesthetic', framed({ inputs: [image()] }).body, { 'inference-header-content-length': 'abc' }), 400, 'NIMA_INVALID_REQUEST', /Inference-Header-Content-Length/],
    ['header length past the body', () => {
      const { body } = framed({ inputs: [image()] })
      return infer('aesthetic', body, { 'inference-header-content-length': String(body.length + 1) })
    }, 400, 'NIMA_INVALID_REQUEST', /Inference-Header-Content-Length/],
    ['header length cutting the JSON', () => infer('aesthetic', framed({ inputs: [image()] }).body, { 'inference-header-content-length': '10' }), 400, 'NIMA_INVALID_REQUEST', /not valid JSON/],
    ['binary bytes that belong to no input', () => {
      const { body, headers } = framed({ inputs: [image()] }, Buffer.from('extra'))
      return infer('aesthetic', body, headers)
    }, 400, 'NIMA_INVALID_REQUEST', /belong to no input/],
    ['binary_data_size past the data', () => {
      const { body, headers } = framed({ inputs: [{ name: 'image', datatype: 'BYTES', shape: [1], parameters: { binary_data_size: jpeg.length + 100 } }] }, bytesTensor(jpeg))
      return infer('aesthetic', body, headers)
    }, 400, 'NIMA_INVALID_REQUEST', /only \d+ bytes of binary data are left/],
    ['a BYTES element longer than its data', () => {
      const element = bytesTensor(jpeg).subarray(0, 1000)
      const { body, headers } = framed({ inputs: [{ name: 'image', datatype: 'BYTES', shape: [1], parameters: { binary_data_size: element.length } }] }, element)
      return infer('aesthetic', body, headers)
    }, 400, 'NIMA_INVALID_REQUEST', /declares \d+ bytes, only 996 are left/],
    ['binary FP32 of the wrong size', () => {
      const { body, headers } = framed({ inputs: [{ name: 'tensor', datatype: 'FP32', shape: [1, 224, 224, 3], parameters: { binary_data_size: 8 } }] }, Buffer.alloc(8))
      return infer('aesthetic', body, headers)
    }, 400, 'NIMA_INVALID_REQUEST', /602112 bytes/],
    ['JSON body over BODY_LIMIT_BYTES', () => infer('aesthetic', { inputs: [image({ data: ['A'.repeat(BODY_LIMIT)] })] }), 413, 'NIMA_PAYLOAD_TOO_LARGE', /BODY_LIMIT_BYTES/],
    ['a binary BYTES element over BODY_LIMIT_BYTES', () => {
      const element = bytesTensor(Buffer.alloc(BODY_LIMIT + 1))
      const { body, headers } = framed({ inputs: [{ name: 'image', datatype: 'BYTES', shape: [1], parameters: { binary_data_size: element.length } }] }, element)
      return infer('aesthetic', body, headers)
    }, 413, 'NIMA_PAYLOAD_TOO_LARGE', /element 0 is over/],
    ['body over RANK_UPLOAD_MAX_BYTES', () => {
      const { body, headers } = framed({ inputs: [{ name: 'image', datatype: 'BYTES', shape: [1], parameters: { binary_data_size: UPLOAD_MAX } }] }, Buffer.alloc(UPLOAD_MAX))
      return infer('aesthetic', body, headers)
    }, 413, 'NIMA_PAYLOAD_TOO_LARGE'],
  ]
  for (const [what, send, status, code, message] of cases) {
    await t.test(what, async (t) => protocolError(t, await send(), status, code, message))
  }
})

t.test('metrics: /infer is timed by its route template, and its errors counted by code', async (t) => {
  const text = (await app.inject('/metrics')).body
  t.match(text, /nima_http_request_duration_seconds_count\{route="\/v2\/models\/:name\/infer",method="POST",status_code="200"\} [1-9]/)
  t.match(text, /nima_http_request_duration_seconds_count\{route="\/v2\/models\/:name\/versions\/:version\/infer",method="POST",status_code="200"\} [1-9]/)
  t.match(text, /nima_errors_total\{code="NIMA_MODEL_NOT_FOUND"\} [1-9]/)
  t.match(text, /nima_batch_size_count\{model="aesthetic"[^}]*\} [1-9]/)
})
