/**
 * The float16 variant: the converter's numbers and graph, the catalog rules that pair a
 * variant with its exact base, the `models fp16` command with its measured gate, and the
 * score difference from float32 on the sample photos (the issue's |Δmean| ≤ 0.02).
 */
import { cp, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { runCli } from '../../src/cli/run-cli.js'
import { float16VariantOf, scanModels, selectModel } from '../../src/models/catalog.js'
import { ensureModels } from '../../src/model-tools/ensure.js'
import { convertToFloat16, Float16ConversionError, float16Bytes, float16Values } from '../../src/model-tools/float16.js'
import { readManifest } from '../../src/models/manifest.js'
import { floatInitializer, floatValueInfo, node, onnx } from '../../src/models/onnx-proto.js'
import { buildOnnxModel } from '../../src/models/onnx-graph.js'
import { syntheticWeights } from '../../src/model-tools/synthetic-weights.js'
import { testModelsDir } from '../helpers/models.js'
import { sharedImages, samplePhotos } from '../helpers/paths.js'
import { recordIo } from './cli-io.js'

const { FLOAT, FLOAT16 } = onnx.TensorProto.DataType

function halfBits(x: number): number {
  const bytes = float16Bytes(Float32Array.of(x))
  return bytes[0]! | (bytes[1]! << 8)
}

t.test('float16 encoding: IEEE 754 binary16, round to nearest even', async (t) => {
  t.equal(halfBits(1), 0x3c00)
  t.equal(halfBits(-2), 0xc000)
  t.equal(halfBits(1 / 3), 0x3555)
  t.equal(halfBits(65504), 0x7bff, 'largest finite')
  t.equal(halfBits(6.103515625e-5), 0x0400, 'smallest normal')
  t.equal(halfBits(5.960464477539063e-8), 0x0001, 'smallest subnormal')
  t.equal(float16Values(float16Bytes(Float32Array.of(2049)))[0], 2048, 'a tie goes to the even neighbour')
  t.equal(float16Values(float16Bytes(Float32Array.of(2051)))[0], 2052, 'a tie goes to the even neighbour')
  const stats = { maxAbsRoundingError: 0, flushedToZero: 0 }
  t.same([...float16Values(float16Bytes(Float32Array.of(1e-8, 0.1), stats))], [0, Math.fround(0.0999755859375)])
  t.equal(stats.flushedToZero, 1, 'a weight below the smallest subnormal is counted')
  t.equal(stats.maxAbsRoundingError, Math.fround(0.1) - 0.0999755859375, 'the largest |x - float16(x)| is recorded')
  t.throws(() => float16Bytes(Float32Array.of(70000)), /does not fit in float16/)
  t.throws(() => float16Bytes(Float32Array.of(Number.NaN)), /does not fit in float16/)
})

t.test('converted graph: float16 inside, float32 at the edges and in the softmax', async (t) => {
  const base = onnx.ModelProto.decode(buildOnnxModel(syntheticWeights(3)))
  const { model, stats } = convertToFloat16(base)
  const graph = model.graph!
  t.ok(graph.initializer!.every((i) => i.dataType === FLOAT16), 'every weight is float16')
  t.equal(stats.initializers, base.graph!.initializer!.length)
  const count = base.graph!.initializer!.reduce((n, i) => n + (i.dims ?? []).reduce<number>((a, d) => a * Number(d), 1), 0)
  t.equal(stats.values, count, 'every value of every initializer')
  t.same(
    graph.input!.map((i) => i.type!.tensorType!.elemType),
    [FLOAT],
  )
  t.same(
    graph.output!.map((o) => [o.name, o.type!.tensorType!.elemType]),
    [
      ['features', FLOAT],
      ['scores', FLOAT],
      ['feature_map', FLOAT],
    ],
  )
  const casts = graph.node!.filter((n) => n.opType === 'Cast')
  t.same(
    casts.map((c) => [c.input![0], c.output![0], Number(c.attribute![0]!.i)]),
    [
      ['input', 'input/as_float16', FLOAT16],
      ['logits', 'logits/as_float32', FLOAT],
      ['features/float16', 'features', FLOAT],
      ['feature_map/float16', 'feature_map', FLOAT],
    ],
  )
  const softmax = graph.node!.find((n) => n.opType === 'Softmax')!
  t.same(softmax.input, ['logits/as_float32'], 'softmax runs on float32 logits')
  t.same(graph.node!.find((n) => n.opType === 'Gemm')!.input![0], 'features/float16', 'the head reads the float16 features')
  t.equal(new Set(graph.node!.map((n) => n.name)).size, graph.node!.length, 'node names stay unique')
  t.same(
    model.metadataProps!.find((p) => p.key === 'precision'),
    { key: 'precision', value: 'float16' },
  )
  t.throws(() => convertToFloat16(model), /already float16/)
})

t.test('the converter refuses what it cannot convert faithfully', async (t) => {
  const tiny = (op: string, weight: number) =>
    onnx.ModelProto.create({
      irVersion: 8,
      opsetImport: [{ domain: '', version: 13 }],
      graph: {
        name: 'tiny',
        node: [node(op, ['x', 'w'], ['y'])],
        initializer: [floatInitializer('w', { shape: [1], data: Float32Array.of(weight) })],
        input: [floatValueInfo('x', [1])],
        output: [floatValueInfo('y', [1])],
      },
    })
  t.throws(() => convertToFloat16(tiny('Pow', 2)), Float16ConversionError)
  t.throws(() => convertToFloat16(tiny('Pow', 2)), /op Pow .* is not known to run in float16/)
  t.throws(() => convertToFloat16(tiny('Add', 1e6)), /initializer w: value 1000000 .* does not fit in float16/)
  t.doesNotThrow(() => convertToFloat16(tiny('Add', 1)))
})

t.test('catalog: a variant pairs only with the exact float32 model it was made from', async (t) => {
  const dir = t.testdir()
  await ensureModels(dir, { seeds: { aesthetic: 1, technical: 2 } })
  const io = recordIo()
  t.equal(await runCli(['models', 'fp16', '--dir', dir, '--id', 'aesthetic'], io), 0, io.stderr)
  t.match(io.stdout, /aesthetic\/synthetic-s1: installed SYNTHETIC float16 variant synthetic-s1-fp16 at /)
  t.notMatch(io.stdout, /technical/, '--id limits the command to one model')

  let { entries } = await scanModels(dir)
  const base = selectModel(entries, 'aesthetic')!
  t.equal(base.manifest.version, 'synthetic-s1', 'the newer float16 variant never wins the plain selection')
  const variant = float16VariantOf(entries, base)!
  t.equal(variant.manifest.version, 'synthetic-s1-fp16')
  t.equal(variant.manifest.precision, 'float16')
  t.equal(variant.manifest.synthetic, true, 'the synthetic flag is inherited')
  t.equal(variant.manifest.provenance.baseModel, 'aesthetic/synthetic-s1')
  t.equal(variant.manifest.provenance.sourceSha256, base.manifest.sha256)
  t.equal(float16VariantOf(entries, selectModel(entries, 'technical')!), undefined)
  const sizes = [(await readFile(base.modelPath)).length, (await readFile(variant.modelPath)).length]
  t.ok(sizes[1]! < sizes[0]! * 0.51, `the variant is half the size (${sizes[1]} vs ${sizes[0]} bytes)`)

  // The base is replaced (say, by a newer synthetic seed under the same version): the old
  // variant no longer matches its hash and must not be served.
  const manifestPath = join(base.dir, 'manifest.json')
  const manifest = await readManifest(manifestPath)
  await writeFile(manifestPath, JSON.stringify({ ...manifest, sha256: 'f'.repeat(64) }))
  ;({ entries } = await scanModels(dir))
  t.equal(float16VariantOf(entries, selectModel(entries, 'aesthetic')!), undefined, 'a stale variant is ignored')

  const ensured = await ensureModels(dir)
  t.same(
    ensured.map((o) => [o.task, o.action, o.manifest.precision]),
    [
      ['aesthetic', 'present', 'float32'],
      ['technical', 'present', 'float32'],
    ],
  )
})

const noPhotos = samplePhotos().length === 0 ? 'needs the sample photos in ../shared/images, which are absent' : false

t.test('models fp16: usage errors and the measured gate', { skip: noPhotos }, async (t) => {
  // One t.testdir() per test: the models and the photos get sub-folders of it.
  const root = t.testdir({ photos: {} })
  const dir = join(root, 'models')
  const photos = join(root, 'photos')
  await ensureModels(dir, { seeds: { aesthetic: 1, technical: 2 } })
  for (const [argv, message] of [
    [['--tolerance', 'abc'], /--tolerance: expected a positive number, got "abc"/],
    [['--tolerance', '0'], /--tolerance: expected a positive number/],
    [['--check', join(photos, 'missing')], /--check: cannot read folder .*: ENOENT/],
    [['--check', photos], /--check: no images in /],
    [['--id', 'nope'], /fp16: no float32 model for nope in /],
  ] as [string[], RegExp][]) {
    const io = recordIo()
    t.equal(await runCli(['models', 'fp16', '--dir', dir, ...argv], io), 2, argv.join(' '))
    t.match(io.stderr, message)
  }

  const available = samplePhotos().slice(0, 3)
  await Promise.all(available.map((p, i) => cp(p, join(photos, `${i}${p.slice(p.lastIndexOf('.'))}`))))
  const strict = recordIo()
  t.equal(await runCli(['models', 'fp16', '--dir', dir, '--id', 'technical', '--check', photos, '--tolerance', '1e-12'], strict), 1, strict.stderr)
  t.match(strict.stderr, /technical\/synthetic-s2: float16 variant not installed: 3 photos, \|Δmean\| max .* above the tolerance 1e-12/)
  const { entries } = await scanModels(dir)
  t.equal(entries.filter((e) => e.manifest.precision === 'float16').length, 0, 'nothing was installed')
})

t.test('float16 vs float32 on the sample photos (|Δmean| ≤ 0.02), through models fp16 --check', { skip: noPhotos }, async (t) => {
  const dir = t.testdir()
  await cp(await testModelsDir(), dir, { recursive: true })
  const io = recordIo()
  t.equal(await runCli(['models', 'fp16', '--dir', dir, '--check', sharedImages], io), 0, io.stderr)
  t.match(io.stderr, /skipped .*truncated-broken\.jpg: /, 'an undecodable photo is named, not fatal')
  t.match(io.stdout, /aesthetic\/synthetic-s1007: float16 check passed: \d+ photos, \|Δmean\| max /)
  const { entries } = await scanModels(dir)
  for (const id of ['aesthetic', 'technical']) {
    const base = selectModel(entries, id)!
    const variant = float16VariantOf(entries, base)!
    // The figures recorded in the manifest are the ones the command measured and printed.
    const check = variant.manifest.provenance.metrics?.['check'] as { images: number; maxAbsDeltaMean: number; meanAbsDeltaMean: number; maxAbsDeltaP: number; provider: string }
    t.comment(
      `${id}/${base.manifest.version} (SYNTHETIC weights) on ${check.images} photos: |Δmean| max ${check.maxAbsDeltaMean.toExponential(2)}, ` +
        `mean ${check.meanAbsDeltaMean.toExponential(2)}; |Δp| max ${check.maxAbsDeltaP.toExponential(2)}; provider ${check.provider}`,
    )
    t.equal(check.images, samplePhotos().length, 'every decodable sample photo was compared')
    t.ok(check.maxAbsDeltaMean <= 0.02, `${id}: max |Δmean| ${check.maxAbsDeltaMean} ≤ 0.02`)
    t.ok(check.maxAbsDeltaMean > 0, `${id}: the variant really computes in float16 (the scores differ)`)
  }
  const list = recordIo()
  t.equal(await runCli(['models', 'list', '--dir', dir], list), 0)
  t.match(list.stdout, /technical\tsynthetic-s1011-fp16\tSYNTHETIC\tfloat16\t[0-9a-f]{64}/)
})
