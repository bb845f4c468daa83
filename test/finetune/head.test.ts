import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { decodeModel, headPredict, HeadError, initializerValues, readHead, replaceHead, type Head } from '../../src/finetune/head.js'
import { openSession } from '../../src/inference/onnx-backend.js'
import { scanModels, selectModel } from '../../src/models/catalog.js'
import { floatInitializer, onnx } from '../../src/models/onnx-proto.js'
import { mulberry32 } from '../../src/util/prng.js'
import { testModelsDir } from '../helpers/models.js'

const entry = selectModel((await scanModels(await testModelsDir())).entries, 'aesthetic')!
const baseBytes = await readFile(entry.modelPath)

function randomHead(seed: number): Head {
  const rng = mulberry32(seed)
  return {
    inputs: 1024,
    outputs: 10,
    kernel: Float64Array.from({ length: 10240 }, () => 0.05 * rng.normal()),
    bias: Float64Array.from({ length: 10 }, () => rng.normal()),
  }
}

/** A random NHWC batch in [-1, 1]. */
function randomInput(n: number, seed: number): Float32Array {
  const rng = mulberry32(seed)
  return Float32Array.from({ length: n * 224 * 224 * 3 }, () => rng.uniform(-1, 1))
}

async function run(bytes: Uint8Array, dir: string, input: Float32Array, n: number) {
  const path = join(dir, `m-${Math.random().toString(36).slice(2)}.onnx`)
  await writeFile(path, bytes)
  const session = await openSession(path, 'input', { providers: ['cpu'], intraOpThreads: 0, interOpThreads: 1 })
  try {
    return await session.run(input, [n, 224, 224, 3], ['features', 'scores'])
  } finally {
    await session.dispose()
  }
}

t.test('readHead finds the Dense head by structure and reads it as float64', async (t) => {
  const model = decodeModel(baseBytes)
  const head = readHead(model)
  t.equal(head.inputs, 1024)
  t.equal(head.outputs, 10)
  const gemm = model.graph!.node!.find((n) => n.opType === 'Gemm')!
  const kernel = initializerValues(model.graph!.initializer!.find((i) => i.name === gemm.input![1])!)
  t.equal(head.kernel[12345 % 10240], kernel[12345 % 10240])
  t.equal(head.kernel.length, kernel.length)
})

t.test('replaceHead changes the two head initializers and nothing else', async (t) => {
  const head = randomHead(1)
  const out = replaceHead(baseBytes, head, { metadata: { finetuned_from: 'aesthetic/x' } })
  const before = decodeModel(baseBytes)
  const after = decodeModel(out)
  const gemm = before.graph!.node!.find((n) => n.opType === 'Gemm')!
  const headNames = new Set([gemm.input![1], gemm.input![2]])
  t.same(after.graph!.node!.map((n) => onnx.NodeProto.encode(n).finish()), before.graph!.node!.map((n) => onnx.NodeProto.encode(n).finish()), 'nodes unchanged')
  t.same(after.graph!.input, before.graph!.input)
  t.same(after.graph!.output, before.graph!.output)
  let same = 0
  for (const [i, init] of before.graph!.initializer!.entries()) {
    const other = after.graph!.initializer![i]!
    t.equal(other.name, init.name)
    if (headNames.has(init.name!)) continue
    t.same(Buffer.from(onnx.TensorProto.encode(other).finish()), Buffer.from(onnx.TensorProto.encode(init).finish()))
    same++
  }
  t.equal(same, before.graph!.initializer!.length - 2, 'every backbone initializer byte-identical')
  const read = readHead(after)
  for (let k = 0; k < 10240; k += 97) t.equal(read.kernel[k], Math.fround(head.kernel[k]!))
  t.equal(after.metadataProps.find((p) => p.key === 'finetuned_from')?.value, 'aesthetic/x')
  t.throws(() => replaceHead(baseBytes, { ...head, inputs: 512, kernel: new Float64Array(5120) }), HeadError)
  t.throws(() => replaceHead(baseBytes, { ...head, bias: Float64Array.from({ length: 10 }, () => NaN) }), /non-finite/)
})

t.test('ONNX Runtime: features unchanged, scores = softmax(features·W + b) of the new head', async (t) => {
  const dir = t.testdir()
  const head = randomHead(2)
  const input = randomInput(2, 3)
  const base = await run(baseBytes, dir, input, 2)
  const tuned = await run(replaceHead(baseBytes, head), dir, input, 2)
  t.same(tuned['features'], base['features'], 'the backbone output is bit-identical')
  let worst = 0
  for (let i = 0; i < 2; i++) {
    const expected = headPredict(head, base['features']!.subarray(i * 1024, (i + 1) * 1024))
    for (let k = 0; k < 10; k++) worst = Math.max(worst, Math.abs(tuned['scores']![i * 10 + k]! - expected[k]!))
  }
  t.ok(worst < 1e-5, `max |Δ| ${worst.toExponential(2)}`)
  // and the base head read by readHead reproduces the base model's own scores
  const baseHead = readHead(decodeModel(baseBytes))
  const p = headPredict(baseHead, base['features']!.subarray(0, 1024))
  for (let k = 0; k < 10; k++) t.ok(Math.abs(p[k]! - base['scores']![k]!) < 1e-5)
})

t.test('a head stored transposed (Gemm transB = 1) is read and written in its own layout', async (t) => {
  const model = decodeModel(baseBytes)
  const gemm = model.graph!.node!.find((n) => n.opType === 'Gemm')!
  const kernelName = gemm.input![1]!
  const k = readHead(model)
  const transposed = new Float32Array(10240)
  for (let i = 0; i < 1024; i++) for (let j = 0; j < 10; j++) transposed[j * 1024 + i] = k.kernel[i * 10 + j]!
  model.graph!.initializer = model.graph!.initializer!.map((init) =>
    init.name === kernelName ? onnx.TensorProto.create(floatInitializer(kernelName, { shape: [10, 1024], data: transposed })) : init,
  )
  gemm.attribute = [...(gemm.attribute ?? []), { name: 'transB', type: onnx.AttributeProto.AttributeType.INT, i: 1 }]
  const transB = onnx.ModelProto.encode(model).finish()
  t.same([...readHead(decodeModel(transB)).kernel.subarray(0, 50)], [...k.kernel.subarray(0, 50)], 'same head whatever the layout')
  const head = randomHead(4)
  const dir = t.testdir()
  const input = randomInput(1, 5)
  const a = await run(replaceHead(baseBytes, head), dir, input, 1)
  const b = await run(replaceHead(transB, head), dir, input, 1)
  for (let j = 0; j < 10; j++) t.ok(Math.abs(a['scores']![j]! - b['scores']![j]!) < 1e-6)
})

t.test('not a NIMA model: clear errors', async (t) => {
  t.throws(() => decodeModel(Buffer.from('definitely not protobuf')), HeadError)
  const model = decodeModel(baseBytes)
  model.graph!.node = model.graph!.node!.filter((n) => n.opType !== 'Gemm')
  t.throws(() => readHead(model), /no Gemm node reads the "features" output/)
})
