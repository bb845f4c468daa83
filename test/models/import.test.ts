/**
 * `models import`: users' own Keras NIMA MobileNet v1 files in both HDF5 layouts, with
 * dense/dense_1/custom heads and both padding eras, are converted, proven against the
 * float64 reference, installed, and then served with exactly the proof's ONNX Runtime
 * outputs. Files of another architecture are refused with what was found and expected.
 */
import { rmSync, symlinkSync, mkdirSync, existsSync } from 'node:fs'
import { mkdtemp, readFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { runModelsCommand } from '../../src/cli/models-command.js'
import { EXPECTED_TENSORS, elementCount } from '../../src/models/architecture.js'
import { PROOF_FLOOR_MEAN, PROOF_FLOOR_P, runConversionProof } from '../../src/model-tools/conversion-proof.js'
import { importKerasModel } from '../../src/model-tools/import.js'
import { modelManifest } from '../../src/model-tools/install.js'
import { sha256Hex } from '../../src/models/integrity.js'
import { writeKerasWeights, type KerasWriteOptions } from '../../src/model-tools/keras-hdf5-writer.js'
import { readKerasFile } from '../../src/model-tools/keras-hdf5.js'
import { readManifest } from '../../src/models/manifest.js'
import { mulberry32 } from '../../src/util/prng.js'
import { buildOnnxModel } from '../../src/models/onnx-graph.js'
import { syntheticWeights } from '../../src/model-tools/synthetic-weights.js'
import { makeTensor, type Tensor } from '../../src/models/weights.js'
import { syntheticProofInputs } from '../../src/model-tools/proof-inputs.js'
import { ManifestModel, tensorSpecOf } from '../../src/models/model-pipeline.js'
import { sharedImages } from '../helpers/paths.js'
import { startTestService } from '../helpers/service.js'
import { recordIo } from './cli-io.js'

// Removed at exit rather than via t.testdir(), whose root folder can go before subtests end.
const dir = await mkdtemp(join(tmpdir(), 'nima-import-'))
process.on('exit', () => rmSync(dir, { recursive: true, force: true }))
const modelsDir = join(dir, 'models')
const photosDir = join(dir, 'photos')
mkdirSync(photosDir)
for (const photo of ['idealo/aesthetic1.jpg', 'natural/chelsea.png']) symlinkSync(join(sharedImages, photo), join(photosDir, photo.split('/')[1]!))

async function fixture(name: string, seed: number, options: KerasWriteOptions): Promise<string> {
  const path = join(dir, name)
  await writeKerasWeights(path, syntheticWeights(seed), options)
  return path
}

const cpu = { providers: ['cpu'] as const, intraOpThreads: 1, interOpThreads: 1 }

t.test('save_weights, dense_1 head, Keras 2.1.6 padding: proven, installed, served with the proof\'s outputs', async (t) => {
  const file = await fixture('hotel_aesthetic.hdf5', 1801, { headLayer: 'dense_1', mobilenet: 'keras-2.1.6' })
  const photos = [join(photosDir, 'aesthetic1.jpg'), join(photosDir, 'chelsea.png')]
  const lines: string[] = []
  const result = await importKerasModel({ dir: modelsDir, file, task: 'aesthetic', id: 'hotel', version: '1', photos, maxInputPixels: 100_000_000, log: (l) => lines.push(l) })
  t.comment(lines.join('\n'))
  const { proof, installed, inputs } = result
  t.ok(proof.passed, 'the proof passed')
  t.ok(proof.maxAbsDeltaP <= proof.tolerance.p && proof.maxAbsDeltaMean <= proof.tolerance.mean)
  t.ok(proof.tolerance.p >= PROOF_FLOOR_P && proof.tolerance.mean >= PROOF_FLOOR_MEAN, 'the tolerance is the floor plus the measured rounding')

  const m = await readManifest(installed.manifestPath)
  t.equal(m.synthetic, false)
  t.match(m.provenance, {
    kind: 'keras-import',
    sourceSha256: sha256Hex(await readFile(file)),
    kerasImport: { fileName: 'hotel_aesthetic.hdf5', layout: 'save_weights', kerasVersion: '2.1.6', headLayer: 'dense_1', padding: 'symmetric', paddingReason: /conv_pad_1 present/ },
    conversionProof: { inputs: 'photos', count: 2, photos: ['aesthetic1.jpg', 'chelsea.png'], maxAbsDeltaP: proof.maxAbsDeltaP, float32ReferenceMaxAbsDeltaP: proof.float32Reference.maxAbsDeltaP, toleranceP: proof.tolerance.p, provider: 'cpu' },
  })

  // Served through the service's own model path: the installed file, its manifest.
  const served = await ManifestModel.open(installed.modelPath, m, cpu)
  t.teardown(() => served.dispose())
  const input = served.batchBuffer(inputs.tensors.length)
  inputs.tensors.forEach((tensor, i) => input.set(tensor, i * served.tensorSize))
  const { scores } = await served.run(input, inputs.tensors.length)
  let maxDiff = 0
  proof.onnx.forEach((row, i) => row.forEach((p, b) => (maxDiff = Math.max(maxDiff, Math.abs(p - scores[i * 10 + b]!)))))
  t.comment(`installed model vs the proof's ORT outputs: max |Δp| ${maxDiff}`)
  t.ok(maxDiff <= 1e-7, `served probabilities equal the proof's (max |Δp| ${maxDiff})`)
})

t.test('full model.save, tf.keras dense head, Keras >= 2.2.1 padding: POST /score serves the proof\'s scores', async (t) => {
  const file = await fixture('tfkeras_technical.h5', 1802, { layout: 'model', headLayer: 'dense' })
  const photo = join(photosDir, 'aesthetic1.jpg')
  const { proof, installed } = await importKerasModel({ dir: modelsDir, file, task: 'technical', id: 'sharpness', version: '2026-11', photos: [photo], maxInputPixels: 100_000_000 })
  t.ok(proof.passed, `proof: max |Δp| ${proof.maxAbsDeltaP}, max |Δmean| ${proof.maxAbsDeltaMean}`)
  t.match(installed.manifest.provenance.kerasImport, { layout: 'model', kerasVersion: '2.2.4', headLayer: 'dense', padding: 'keras' })

  // Both imported models (hotel: aesthetic, above; sharpness: technical) serve as the defaults.
  const svc = await startTestService({ MODELS_DIR: modelsDir, MODELS: 'hotel,sharpness' })
  t.teardown(() => svc.server.shutdown())
  const res = await fetch(`${svc.url}/score?models=sharpness`, { method: 'POST', body: await readFile(photo), headers: { 'content-type': 'image/jpeg' } })
  const body = (await res.json()) as { scores: Record<string, { distribution: number[] }>; models: Record<string, { synthetic: boolean }> }
  t.equal(res.status, 200, JSON.stringify(body).slice(0, 300))
  const distribution = body.scores['sharpness']!.distribution
  const gap = Math.max(...distribution.map((p, b) => Math.abs(p - proof.onnx[0]![b]!)))
  t.comment(`POST /score vs the proof's ORT outputs: max |Δp| ${gap}`)
  t.ok(gap <= 1e-6, `served distribution equals the proof's ORT output (max |Δp| ${gap})`)
  t.equal(body.models['sharpness']!.synthetic, false)
})

t.test('CLI: a nested base with a custom head name, proven on seeded photo-like inputs', async (t) => {
  const file = await fixture('nested.h5', 1803, { layout: 'model', nestedBase: 'mobilenet_1.00_224', headLayer: 'nima_scores', mobilenet: 'keras-2.1.6' })
  const io = recordIo()
  const code = await runModelsCommand(['import', file, '--dir', modelsDir, '--task', 'aesthetic', '--id', 'nested', '--version', 'v1'], io)
  t.equal(code, 0, io.stderr)
  t.comment(io.stdout)
  t.match(io.stdout, /head nima_scores/)
  t.match(io.stdout, /symmetric padding on stride-2 convs \(layer conv_pad_1 present/)
  t.match(io.stdout, /conversion proof passed: 3 synthetic photo-like inputs: ONNX Runtime max \|Δp\| \S+, max \|Δmean\| \S+ from the float64 reference; the float32 reference max \|Δp\| \S+, max \|Δmean\| \S+ \(tolerance 10x that \+ floor: \S+, \S+\)/)
  const m = await readManifest(join(modelsDir, 'nested', 'v1', 'manifest.json'))
  t.match(m.provenance, { kerasImport: { headLayer: 'nima_scores', padding: 'symmetric' }, conversionProof: { inputs: 'synthetic', count: 3, seed: 18 } })
  t.comment(`proof of 3 synthetic inputs: ${m.provenance.conversionProof?.seconds} s`)

  const again = recordIo()
  await t.rejects(runModelsCommand(['import', file, '--dir', modelsDir, '--task', 'aesthetic', '--id', 'nested', '--version', 'v1'], again), {
    code: 'MODEL_USAGE',
    message: /nested\/v1 is already installed .*pass --force to replace it/,
  })
})

t.test('the proof fails, clearly, when the ONNX graph computes another network', async (t) => {
  const file = await fixture('keras22.hdf5', 1804, {})
  const keras = await readKerasFile(file)
  t.equal(keras.padding.padding, 'keras')
  const wrong = buildOnnxModel(keras.weights, { padding: 'symmetric' })
  const manifest = await modelManifest({ dir: modelsDir, id: 'wrong', version: '1', task: 'aesthetic', onnx: wrong, synthetic: false, provenance: { kind: 'keras-import' } })
  const proof = await runConversionProof(file, keras.padding.padding, wrong, manifest, syntheticProofInputs(18, 1, tensorSpecOf(manifest)).tensors)
  t.notOk(proof.passed)
  t.equal(proof.failure, 'disagrees')
  t.ok(proof.maxAbsDeltaP > 10 * proof.tolerance.p, `synthetic inputs tell the paddings apart: max |Δp| ${proof.maxAbsDeltaP}, tolerance ${proof.tolerance.p}`)
})

/** An unchecked weight set: the NIMA table with each shape passed through `reshape`. */
function weightsLike(reshape: (name: string, shape: readonly number[]) => readonly number[], extra: [string, number[]][] = []): Map<string, Tensor> {
  const rng = mulberry32(7)
  const set = new Map<string, Tensor>()
  const add = (name: string, shape: readonly number[]): void => {
    const data = new Float32Array(elementCount(shape)).map(() => rng.uniform(0.1, 0.5))
    set.set(name, makeTensor(shape, data))
  }
  for (const [name, shape] of EXPECTED_TENSORS) add(name, reshape(name, shape))
  for (const [name, shape] of extra) add(name, shape)
  return set
}

const v2Tensors: [string, number[]][] = [
  ['Conv1/kernel', [3, 3, 3, 32]],
  ['bn_Conv1/gamma', [32]],
  ['expanded_conv_depthwise/depthwise_kernel', [3, 3, 32, 1]],
  ['expanded_conv_project/kernel', [1, 1, 32, 16]],
  ['block_1_expand/kernel', [1, 1, 16, 96]],
  ['Conv_1/kernel', [1, 1, 320, 1280]],
  ['dense/kernel', [1280, 10]],
  ['dense/bias', [10]],
]

const refusals: [string, ReadonlyMap<string, Tensor>, KerasWriteOptions, RegExp[]][] = [
  [
    'alpha 0.5',
    weightsLike((name, shape) => (name.startsWith('dense/bias') ? shape : shape.map((d) => ([32, 64, 128, 256, 512, 1024].includes(d) ? d / 2 : d)))),
    {},
    [/found conv1 with 16 filters, i\.e\. MobileNet v1 alpha 0\.5; expected 32 filters \(alpha 1\.0\)/, /found a head over 512 features; expected 1024/, /mis-shaped conv1\/kernel: expected shape \[3,3,3,32\], got \[3,3,3,16\]/, /\.\.\. and 116 more/],
  ],
  [
    'a 5-bin head',
    weightsLike((name, shape) => (name.startsWith('dense/') ? shape.map((d) => (d === 10 ? 5 : d)) : shape)),
    { headLayer: 'dense' },
    [/found a head with 5 bins; expected 10 \(scores 1 to 10\)/, /mis-shaped dense\/kernel: expected shape \[1024,10\], got \[1024,5\]/],
  ],
  [
    'MobileNetV2 layer names',
    new Map([...weightsLike(() => [1], v2Tensors)].filter(([name]) => !EXPECTED_TENSORS.has(name) || name.startsWith('dense/'))),
    { layout: 'model' },
    [/found MobileNetV2-style layers \(Conv1, bn_Conv1, expanded_conv_depthwise, \.\.\.\); expected MobileNet v1 layers conv1, conv_dw_1\.\.13, conv_pw_1\.\.13/, /missing conv1\/kernel: expected shape \[3,3,3,32\]/, /\.\.\. and \d+ more/],
  ],
  ['a 192-px input', syntheticWeights(1805), { layout: 'model', inputSize: 192 }, [/model_config declares input shape \[192,192,3\] .*expected \[224,224,3\]/]],
]

for (const [label, weights, options, messages] of refusals) {
  t.test(`refused: ${label}`, async (t) => {
    const file = join(dir, `${label.replace(/\W+/g, '-')}.h5`)
    await writeKerasWeights(file, weights, { ...options, unchecked: true })
    const io = recordIo()
    const err = await runModelsCommand(['import', file, '--dir', modelsDir, '--task', 'aesthetic', '--id', 'refused', '--version', '1'], io).then(
      () => undefined,
      (e: unknown) => e as Error & { code: string },
    )
    t.equal(err?.code, 'MODEL_WEIGHTS_INVALID')
    t.match(err?.message, /(do|does) not match NIMA MobileNet v1/)
    for (const message of messages) t.match(err?.message, message)
    t.notOk(existsSync(join(modelsDir, 'refused')), 'nothing installed')
  })
}

t.test('usage errors name the option', async (t) => {
  const file = join(dir, 'hotel_aesthetic.hdf5')
  const cases: [string[], RegExp][] = [
    [['import', '--task', 'aesthetic', '--id', 'x', '--version', '1'], /import: expected one weights FILE, got 0/],
    [['import', file, '--id', 'x', '--version', '1'], /import: --task is required/],
    [['import', file, '--task', 'quality', '--id', 'x', '--version', '1'], /--task: expected aesthetic or technical, got "quality"/],
    [['import', file, '--task', 'aesthetic', '--id', 'Hotel Model', '--version', '1'], /--id: expected a value matching \^\[a-z\]\[a-z0-9-\]\*\$, got "Hotel Model"/],
    [['import', file, '--task', 'aesthetic', '--id', 'x', '--version', '1', '--check', join(dir, 'absent')], /--check: cannot read folder .*ENOENT/],
  ]
  for (const [args, message] of cases) await t.rejects(runModelsCommand(args, recordIo()), { code: 'MODEL_USAGE', message }, args.join(' '))
})
