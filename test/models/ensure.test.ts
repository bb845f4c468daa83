import { rm, stat } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { runCli } from '../../src/cli/run-cli.js'
import { ensureModels } from '../../src/model-tools/ensure.js'
import { installModel } from '../../src/model-tools/install.js'
import { readManifest } from '../../src/models/manifest.js'
import { buildOnnxModel, GRAPH_NAMES } from '../../src/models/onnx-graph.js'
import { onnx } from '../../src/models/onnx-proto.js'
import { syntheticWeights } from '../../src/model-tools/synthetic-weights.js'
import { recordIo } from './cli-io.js'

t.test('first ensure generates both synthetic models, second does nothing', async (t) => {
  const dir = t.testdir()
  let started = Date.now()
  const first = await ensureModels(dir)
  t.comment(`first ensure: ${Date.now() - started} ms`)
  t.same(first.map((o) => [o.task, o.action, o.manifest.version, o.manifest.synthetic]), [
    ['aesthetic', 'created', 'synthetic-s1007', true],
    ['technical', 'created', 'synthetic-s1011', true],
  ])
  const manifest = await readManifest(join(dir, 'aesthetic', 'synthetic-s1007', 'manifest.json'))
  t.equal(manifest.provenance.kind, 'synthetic')
  t.equal(manifest.provenance.seed, 1007)
  const before = (await stat(first[0]!.modelPath)).mtimeMs

  started = Date.now()
  const second = await ensureModels(dir)
  const elapsed = Date.now() - started
  t.comment(`second ensure: ${elapsed} ms`)
  t.same(second.map((o) => o.action), ['present', 'present'])
  t.equal((await stat(first[0]!.modelPath)).mtimeMs, before, 'the model file was not rewritten')
  t.ok(elapsed < 1000, 'fast when present')
})

t.test('an installed real model counts; only the missing task gets a synthetic one', async (t) => {
  const dir = t.testdir()
  await installModel({
    dir,
    id: 'aesthetic',
    version: 'idealo-0.07',
    task: 'aesthetic',
    onnx: Buffer.from('stand-in bytes'),
    synthetic: false,
    provenance: { kind: 'idealo-keras', notes: 'test stand-in' },
  })
  const outcomes = await ensureModels(dir)
  t.same(outcomes.map((o) => [o.task, o.action, o.manifest.version]), [
    ['aesthetic', 'present', 'idealo-0.07'],
    ['technical', 'created', 'synthetic-s1011'],
  ])
})

t.test('a manifest whose model file is gone is regenerated', async (t) => {
  const dir = t.testdir()
  const [aesthetic] = await ensureModels(dir)
  await rm(aesthetic!.modelPath)
  const outcomes = await ensureModels(dir)
  t.same(outcomes.map((o) => o.action), ['created', 'present'])
  t.ok((await stat(aesthetic!.modelPath)).isFile())
})

t.test('the CLI says SYNTHETIC clearly, both times', async (t) => {
  const dir = t.testdir()
  const io = recordIo()
  t.equal(await runCli(['models', 'ensure', '--dir', dir], io), 0)
  t.match(io.stdout, /aesthetic: installed SYNTHETIC model synthetic-s1007 at /)
  t.match(io.stdout, /technical: installed SYNTHETIC model synthetic-s1011 at /)
  t.match(io.stdout, /SYNTHETIC models are seeded random weights: their scores carry no meaning/)
  const again = recordIo()
  t.equal(await runCli(['models', 'ensure', '--dir', dir], again), 0)
  t.match(again.stdout, /aesthetic: SYNTHETIC model synthetic-s1007 already installed/)
  t.same(again.errors, [])
})

t.test('MODELS_DIR is the default folder', async (t) => {
  const dir = t.testdir()
  const io = recordIo({ MODELS_DIR: dir })
  t.equal(await runCli(['models', 'ensure'], io), 0)
  t.match(io.stdout, new RegExp(`at ${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`))
})

/** An encoded model as files made before the feature-map output were: that output removed. */
function withoutFeatureMap(bytes: Uint8Array): Uint8Array {
  const model = onnx.ModelProto.decode(bytes)
  model.graph!.output = model.graph!.output!.filter((o) => o.name !== GRAPH_NAMES.featureMap)
  return onnx.ModelProto.encode(model).finish()
}

t.test('a synthetic model without the feature-map output is regenerated from its seed; a real one is left alone', async (t) => {
  const dir = t.testdir()
  const old = withoutFeatureMap(buildOnnxModel(syntheticWeights(1007)))
  await installModel({ dir, id: 'aesthetic', version: 'synthetic-s1007', task: 'aesthetic', onnx: old, synthetic: true, provenance: { kind: 'synthetic', seed: 1007 } })
  await installModel({ dir, id: 'technical', version: 'idealo-0.07', task: 'technical', onnx: withoutFeatureMap(buildOnnxModel(syntheticWeights(5))), synthetic: false, provenance: { kind: 'idealo-keras' } })
  const before = await readManifest(join(dir, 'aesthetic', 'synthetic-s1007', 'manifest.json'))
  t.equal(before.output.featureMap, undefined, 'the manifest follows the file: no feature map declared')

  const io = recordIo()
  t.equal(await runCli(['models', 'ensure', '--dir', dir], io), 0)
  t.match(io.stdout, /aesthetic: regenerated SYNTHETIC model synthetic-s1007 at .*predated the feature-map output/)
  t.match(io.stdout, /technical: model idealo-0.07 already installed/)
  const after = await readManifest(join(dir, 'aesthetic', 'synthetic-s1007', 'manifest.json'))
  t.same(after.output.featureMap, { name: 'feature_map', height: 7, width: 7, channels: 1024, layout: 'NCHW' })
  t.equal(after.provenance.seed, 1007)
  t.equal((await readManifest(join(dir, 'technical', 'idealo-0.07', 'manifest.json'))).output.featureMap, undefined)
  const again = await ensureModels(dir)
  t.same(again.map((o) => o.action), ['present', 'present'])
})
