/**
 * The conversion proof: a Keras-layout HDF5 goes through our reader and ONNX builder and
 * must give, in onnxruntime, the probabilities of an independent float64 Keras-semantics
 * forward pass on real photos, within the proof's fixed floor (these weights sit below it).
 * The wrong 'symmetric' padding must fail the same
 * comparison, which shows the test can tell the two apart. A file with Keras 2.1.6's layer
 * list must be detected and converted with that Keras' symmetric padding instead.
 * `models import` runs the same comparison (src/model-tools/conversion-proof.ts) before installing.
 */
import { rmSync } from 'node:fs'
import { mkdtemp } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import t from 'tap'
import { PROOF_FLOOR_MEAN as TOLERANCE_MEAN, PROOF_FLOOR_P as TOLERANCE_P, proofGap } from '../../src/model-tools/conversion-proof.js'
import { readKerasFile, readKerasWeights } from '../../src/model-tools/keras-hdf5.js'
import { writeKerasWeights } from '../../src/model-tools/keras-hdf5-writer.js'
import { buildOnnxModel, type PaddingMode } from '../../src/models/onnx-graph.js'
import { syntheticWeights } from '../../src/model-tools/synthetic-weights.js'
import { imagesDir, loadIdealoInput } from './idealo-input.js'
import { loadReferenceWeights, referenceForward } from '../../src/model-tools/reference-forward.js'
import { meanOf } from '../../src/scoring/distribution.js'
import { runNima } from './run-onnx.js'

const PHOTOS = ['idealo/42039.jpg', 'idealo/aesthetic1.jpg', 'natural/chelsea.png', 'tid2013/ref_I06.png']

interface Gap {
  maxDp: number
  maxDmean: number
}

function compare(onnx: readonly Float32Array[], reference: readonly Float64Array[]): Gap {
  const gap = proofGap(onnx, reference)
  return { maxDp: gap.maxAbsDeltaP, maxDmean: gap.maxAbsDeltaMean }
}

// Removed at exit rather than via t.testdir(), whose root folder can go before subtests end.
const dir = await mkdtemp(join(tmpdir(), 'nima-proof-'))
process.on('exit', () => rmSync(dir, { recursive: true, force: true }))
const hdf5 = join(dir, 'weights_seeded.hdf5')
const hdf5Keras216 = join(dir, 'weights_seeded_keras216.hdf5')
await writeKerasWeights(hdf5, syntheticWeights(20240601))
await writeKerasWeights(hdf5Keras216, syntheticWeights(20240602), { mobilenet: 'keras-2.1.6' })
const images = await Promise.all(PHOTOS.map((p) => loadIdealoInput(resolve(imagesDir, p))))

const started = Date.now()
const refWeights = await loadReferenceWeights(hdf5)
const reference = images.map((image) => referenceForward(refWeights, image))
t.comment(`float64 reference forward: ${PHOTOS.length} photos in ${Date.now() - started} ms`)

async function onnxScores(padding: PaddingMode): Promise<Float32Array[]> {
  const model = buildOnnxModel(await readKerasWeights(hdf5), { padding })
  return (await runNima(model, images)).scores
}

function report(t: { comment: (...args: unknown[]) => void }, label: string, gap: Gap): void {
  t.comment(`${label}: max |Δp| = ${gap.maxDp.toExponential(3)}, max |Δmean| = ${gap.maxDmean.toExponential(3)}`)
}

t.test('the photos differ by far more than the tolerance, so agreeing within it means something', async (t) => {
  let spread = 0
  for (const a of reference)
    for (const b of reference) for (let bin = 0; bin < 10; bin++) spread = Math.max(spread, Math.abs(a[bin]! - b[bin]!))
  t.comment(`reference means: ${reference.map((r) => meanOf(r).toFixed(4)).join(', ')}; max |Δp| between photos = ${spread.toExponential(3)}`)
  t.ok(spread > 10 * TOLERANCE_P, `photos give different distributions (max bin difference ${spread})`)
  t.ok(reference.every((r) => Math.max(...r) < 0.95), 'softmax is not one-hot')
})

t.test('keras padding: ONNX matches the float64 Keras reference', async (t) => {
  const file = await readKerasFile(hdf5)
  t.equal(file.padding.padding, 'keras', `detected from the layer list: ${file.padding.reason}`)
  const gap = compare(await onnxScores(file.padding.padding), reference)
  report(t, 'keras padding', gap)
  t.ok(gap.maxDp <= TOLERANCE_P, `max |Δp| ${gap.maxDp} <= ${TOLERANCE_P}`)
  t.ok(gap.maxDmean <= TOLERANCE_MEAN, `max |Δmean| ${gap.maxDmean} <= ${TOLERANCE_MEAN}`)
})

t.test('symmetric padding: the same comparison fails, clearly', async (t) => {
  const gap = compare(await onnxScores('symmetric'), reference)
  report(t, 'symmetric padding on a Keras >= 2.2.1 file', gap)
  // "Clearly": ten times over the tolerance, not a near miss.
  t.ok(gap.maxDp > 10 * TOLERANCE_P, `max |Δp| ${gap.maxDp} > 10 x ${TOLERANCE_P}`)
  t.ok(gap.maxDmean > 10 * TOLERANCE_MEAN, `max |Δmean| ${gap.maxDmean} > 10 x ${TOLERANCE_MEAN}`)
})

t.test('a Keras 2.1.6 file is detected and converted with its symmetric padding', async (t) => {
  const file = await readKerasFile(hdf5Keras216)
  t.equal(file.padding.padding, 'symmetric', `detected from the layer list: ${file.padding.reason}`)
  const few = images.slice(0, 2)
  const refWeights216 = await loadReferenceWeights(hdf5Keras216)
  const reference216 = few.map((image) => referenceForward(refWeights216, image, 'keras-2.1.6'))
  const right = compare((await runNima(buildOnnxModel(file.weights, { padding: file.padding.padding }), few)).scores, reference216)
  report(t, 'Keras 2.1.6 file, symmetric padding', right)
  t.ok(right.maxDp <= TOLERANCE_P, `max |Δp| ${right.maxDp} <= ${TOLERANCE_P}`)
  t.ok(right.maxDmean <= TOLERANCE_MEAN, `max |Δmean| ${right.maxDmean} <= ${TOLERANCE_MEAN}`)
  const wrong = compare((await runNima(buildOnnxModel(file.weights, { padding: 'keras' }), few)).scores, reference216)
  report(t, 'Keras 2.1.6 file, keras padding (wrong)', wrong)
  t.ok(wrong.maxDp > 10 * TOLERANCE_P, `the other padding misses: max |Δp| ${wrong.maxDp} > 10 x ${TOLERANCE_P}`)
})
