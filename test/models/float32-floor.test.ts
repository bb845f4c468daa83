/**
 * Issue 22: the proof tells float32 rounding from conversion bugs. Weights at float32's
 * floor (BatchNorm variances down to e^-3, head N(0, 0.05)) put a correct float32
 * conversion about 1e-4 from the float64 reference, past the old fixed tolerance (1e-5 in
 * p): the proof accepts it, because the reference run in float32 lands as far. The same
 * weights converted with the wrong padding are refused, far beyond the tolerance.
 */
import { mkdirSync, rmSync, symlinkSync } from 'node:fs'
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { FLOAT32_LIMIT_MEAN, judgeProof, PROOF_FLOOR_MEAN, PROOF_FLOOR_P, PROOF_ROUNDING_MULTIPLE, runConversionProof } from '../../src/model-tools/conversion-proof.js'
import { importKerasModel, proofFigures, proofRefusal } from '../../src/model-tools/import.js'
import { modelManifest } from '../../src/model-tools/install.js'
import { writeKerasWeights } from '../../src/model-tools/keras-hdf5-writer.js'
import { readKerasFile } from '../../src/model-tools/keras-hdf5.js'
import { readManifest } from '../../src/models/manifest.js'
import { buildOnnxModel } from '../../src/models/onnx-graph.js'
import { photoProofInputs } from '../../src/model-tools/proof-inputs.js'
import { tensorSpecOf } from '../../src/models/model-pipeline.js'
import { sharedImages } from '../helpers/paths.js'
import { float32FloorWeights } from './float32-floor.js'

const dir = await mkdtemp(join(tmpdir(), 'nima-floor-'))
process.on('exit', () => rmSync(dir, { recursive: true, force: true }))
const photosDir = join(dir, 'photos')
mkdirSync(photosDir)
for (const photo of ['idealo/42039.jpg', 'natural/chelsea.png']) symlinkSync(join(sharedImages, photo), join(photosDir, photo.split('/')[1]!))
const photos = [join(photosDir, '42039.jpg'), join(photosDir, 'chelsea.png')]
const file = join(dir, 'finetuned.h5')
await writeKerasWeights(file, float32FloorWeights(22), { layout: 'model', headLayer: 'dense' })

t.test('weights at the float32 floor: a correct conversion is accepted, with both errors in the log and the manifest', async (t) => {
  const lines: string[] = []
  const { proof, installed } = await importKerasModel({ dir: join(dir, 'models'), file, task: 'aesthetic', id: 'floor', version: '1', photos, maxInputPixels: 100_000_000, log: (l) => lines.push(l) })
  t.comment(lines.join('\n'))
  t.ok(proof.passed)
  t.ok(proof.maxAbsDeltaP > PROOF_FLOOR_P && proof.maxAbsDeltaMean > PROOF_FLOOR_MEAN, `past the old fixed tolerances (max |Δp| ${proof.maxAbsDeltaP}, max |Δmean| ${proof.maxAbsDeltaMean}): these weights reach the floor`)
  t.ok(proof.float32Reference.maxAbsDeltaP > PROOF_FLOOR_P, `the float32 reference lands as far (max |Δp| ${proof.float32Reference.maxAbsDeltaP})`)
  t.equal(proof.tolerance.p, PROOF_FLOOR_P + PROOF_ROUNDING_MULTIPLE * proof.float32Reference.maxAbsDeltaP)
  t.match(lines.join('\n'), /conversion proof passed: 2 photos: ONNX Runtime max \|Δp\| \S+, max \|Δmean\| \S+ from the float64 reference; the float32 reference max \|Δp\| \S+/)
  const m = await readManifest(installed.manifestPath)
  t.match(m.provenance.conversionProof, {
    maxAbsDeltaP: proof.maxAbsDeltaP,
    maxAbsDeltaMean: proof.maxAbsDeltaMean,
    float32ReferenceMaxAbsDeltaP: proof.float32Reference.maxAbsDeltaP,
    float32ReferenceMaxAbsDeltaMean: proof.float32Reference.maxAbsDeltaMean,
    toleranceP: proof.tolerance.p,
    toleranceMean: proof.tolerance.mean,
  })
})

t.test('the same weights converted with the padding bug: refused, far beyond the tolerance, both errors in the message', async (t) => {
  const keras = await readKerasFile(file)
  t.equal(keras.padding.padding, 'keras')
  const wrong = buildOnnxModel(keras.weights, { padding: 'symmetric' })
  const manifest = await modelManifest({ dir, id: 'wrong', version: '1', task: 'aesthetic', onnx: wrong, synthetic: false, provenance: { kind: 'keras-import' } })
  const inputs = await photoProofInputs(photos, 2, tensorSpecOf(manifest), 100_000_000)
  const proof = await runConversionProof(file, keras.padding.padding, wrong, manifest, inputs.tensors)
  const message = `${proofRefusal(proof)}: ${proofFigures(proof, inputs)}`
  t.comment(message)
  t.notOk(proof.passed)
  t.equal(proof.failure, 'disagrees')
  t.ok(proof.maxAbsDeltaP > 10 * proof.tolerance.p, `max |Δp| ${proof.maxAbsDeltaP} > 10 x tolerance ${proof.tolerance.p}`)
  t.ok(proof.maxAbsDeltaMean > 10 * proof.tolerance.mean, `max |Δmean| ${proof.maxAbsDeltaMean} > 10 x tolerance ${proof.tolerance.mean}`)
  t.match(message, /disagrees with the Keras reference by more than float32 rounding explains: 2 photos: ONNX Runtime max \|Δp\| .* the float32 reference max \|Δp\| /)
})

t.test('the verdict: the tolerance follows the float32 reference; weights float32 cannot carry are refused outright', async (t) => {
  const gap = (p: number, mean: number) => ({ maxAbsDeltaP: p, maxAbsDeltaMean: mean, worst: 0 })
  t.match(judgeProof(gap(2e-4, 1e-3), gap(1e-4, 8e-4)), { passed: true, tolerance: { p: 1e-5 + 1e-3, mean: 1e-4 + 8e-3 } })
  t.match(judgeProof(gap(2e-4, 1e-3), gap(1e-8, 1e-7)), { passed: false, failure: 'disagrees' }, 'the same gap on well-conditioned weights is a bug')
  t.match(judgeProof(gap(5e-6, 5e-5), gap(0, 0)), { passed: true }, 'the floor alone when the float32 reference is exact')
  t.match(judgeProof(gap(1e-3, 1e-2), gap(2e-3, 2 * FLOAT32_LIMIT_MEAN)), { passed: false, failure: 'float32-unfit' })
  t.match(proofRefusal({ failure: 'float32-unfit' } as never), /carry float32 rounding too far to be served in float32/)
})
