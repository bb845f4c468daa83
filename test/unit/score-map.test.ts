import { readFileSync } from 'node:fs'
import t from 'tap'
import { readVerifiedModel, scanModels, selectModel } from '../../src/models/catalog.js'
import { float16Model } from '../../src/model-tools/float16-variant.js'
import { decodeModel, readHead, type Head } from '../../src/models/head.js'
import { decodeIntoTensor, ManifestModel } from '../../src/models/model-pipeline.js'
import { ImageAdmission } from '../../src/imaging/admission.js'
import { meanOf } from '../../src/scoring/distribution.js'
import { gridMean, gridRows, logitMaps, logitsFromMaps, meanGradient, scoreMap } from '../../src/scoring/score-map.js'
import { headLogits, headPredict } from '../../src/finetune/head.js'
import { testModelsDir } from '../helpers/models.js'

const admission = new ImageAdmission({ maxInputPixels: 64_000_000 })
import { samplePhotos } from '../helpers/paths.js'

t.test('a hand-computed case: 2 channels on a 1×2 grid, 2 bins', async (t) => {
  // f₀ = [1, 3], f₁ = [2, 0]; W = [[1, -1], [0.5, 2]] (rows: channels, columns: bins), b = [0.25, -0.5]
  const head: Head = { inputs: 2, outputs: 2, kernel: Float64Array.from([1, -1, 0.5, 2]), bias: Float64Array.from([0.25, -0.5]) }
  const maps = logitMaps([1, 3, 2, 0], { channels: 2, height: 1, width: 2 }, head)
  t.same([...maps[0]!], [1 * 1 + 0.5 * 2, 1 * 3 + 0.5 * 0])
  t.same([...maps[1]!], [-1 * 1 + 2 * 2, -1 * 3 + 2 * 0])
  t.same([...logitsFromMaps(maps, head)], [(2 + 3) / 2 + 0.25, (3 - 3) / 2 - 0.5])
  // p = [0.25, 0.75] over values [1, 2]: E = 1.75, ∂E/∂z = [0.25·(1 − 1.75), 0.75·(2 − 1.75)] = [-0.1875, 0.1875]
  t.same([...meanGradient([0.25, 0.75], [1, 2])], [-0.1875, 0.1875])
  t.same([...scoreMap(maps, [0.25, 0.75], [1, 2])], [-0.1875 * 2 + 0.1875 * 3, -0.1875 * 3 + 0.1875 * -3])
  t.same(gridRows(Float64Array.from([1, 2, 3, 4, 5, 6]), 3), [
    [1, 2, 3],
    [4, 5, 6],
  ])
  t.throws(() => logitMaps([1, 2, 3], { channels: 2, height: 1, width: 2 }, head), /expected 2×1×2 = 4 values, got 3/)
  t.throws(() => scoreMap(maps, [1], [1]), /2 logit maps for 1 bins/)
})

t.test('on a real model run: the identities hold to float tolerance', async (t) => {
  const { entries } = await scanModels(await testModelsDir())
  const entry = selectModel(entries, 'aesthetic')!
  const fm = entry.manifest.output.featureMap
  if (!fm) throw new Error('the test models declare no feature map: rebuild .cache/test-models-v3')
  const head = readHead(decodeModel(await readVerifiedModel(entry)))
  const model = await ManifestModel.open(entry.modelPath, entry.manifest, { providers: ['cpu'], intraOpThreads: 1, interOpThreads: 1 })
  t.teardown(() => model.dispose())
  const photos = samplePhotos().slice(0, 2)
  const input = model.batchBuffer(photos.length)
  for (const [i, photo] of photos.entries()) await decodeIntoTensor(admission, readFileSync(photo), model.spec, input, i)
  const out = await model.run(input, photos.length, ['scores', 'features', 'featureMap'])
  const cells = fm.height * fm.width
  const perImage = fm.channels * cells
  t.equal(out.featureMap.length, photos.length * perImage, 'one 1024×7×7 map per image')
  const values = entry.manifest.output.scores.values

  for (let n = 0; n < photos.length; n++) {
    const f = out.featureMap.subarray(n * perImage, (n + 1) * perImage)
    const pooled = out.features.subarray(n * fm.channels, (n + 1) * fm.channels)
    const p = out.scores.subarray(n * 10, (n + 1) * 10)
    let worstPool = 0
    for (let k = 0; k < fm.channels; k++) worstPool = Math.max(worstPool, Math.abs(gridMean(f.subarray(k * cells, (k + 1) * cells)) - pooled[k]!))
    t.ok(worstPool < 1e-5, `the map is what global pooling reads: max |mean fₖ − featuresₖ| = ${worstPool.toExponential(2)}`)

    const maps = logitMaps(f, fm, head)
    const z = logitsFromMaps(maps, head)
    const zHead = headLogits(head, pooled)
    const worstZ = Math.max(...z.map((v, i) => Math.abs(v - zHead[i]!)))
    t.ok(worstZ < 1e-4, `grid mean of Mᵢ + bᵢ = zᵢ: max |Δz| = ${worstZ.toExponential(2)}`)
    const pz = headPredict(head, pooled)
    const softmaxZ = Array.from(z, (v) => Math.exp(v - Math.max(...z)))
    const total = softmaxZ.reduce((a, b) => a + b, 0)
    const worstP = Math.max(...softmaxZ.map((v, i) => Math.abs(v / total - p[i]!)))
    t.ok(worstP < 1e-5, `softmax(z) is the model's distribution: max |Δp| = ${worstP.toExponential(2)}`)

    // S(c)/(H·W) is dE/dε at ε = 0 when cell c's features are scaled by (1 + ε): check it
    // against a central difference through the head, in float64, for every cell.
    const s = scoreMap(maps, p, values)
    const e = meanOf(p, values)
    t.ok(Math.abs(meanOf(pz, values) - e) < 1e-5, 'the head in float64 gives the model’s mean')
    const eps = 1e-4
    let worstS = 0
    let scale = 0
    for (let c = 0; c < cells; c++) {
      const moved = (sign: number) => {
        const x = Float64Array.from(pooled)
        for (let k = 0; k < fm.channels; k++) x[k]! += (sign * eps * f[k * cells + c]!) / cells
        return meanOf(headPredict(head, x), values)
      }
      const numeric = (moved(1) - moved(-1)) / (2 * eps)
      worstS = Math.max(worstS, Math.abs(numeric - s[c]! / cells))
      scale = Math.max(scale, Math.abs(s[c]! / cells))
    }
    t.ok(scale > 1e-6, `the score map is not all zeros (largest |S/49| = ${scale.toExponential(2)})`)
    t.ok(worstS < 1e-3 * scale + 1e-7, `S(c)/49 is the first-order change of E for cell c: max error ${worstS.toExponential(2)} of ${scale.toExponential(2)}`)
    const gradient = meanGradient(p, values)
    const expected = gradient.reduce((a, g, i) => a + g * (z[i]! - head.bias[i]!), 0)
    t.ok(Math.abs(gridMean(s) - expected) < 1e-5, 'grid mean of S = Σᵢ pᵢ(vᵢ − E)(zᵢ − bᵢ)')
  }
})

t.test('a float16 variant: its head is read (widened exactly) and the identities hold to float16 tolerance', async (t) => {
  const { entries } = await scanModels(await testModelsDir())
  const entry = selectModel(entries, 'aesthetic')!
  const base = await readVerifiedModel(entry)
  const { onnx: fp16 } = float16Model(base, 'aesthetic')
  t.throws(() => readHead(decodeModel(fp16)), /not float32/, 'fine-tuning still refuses a float16 head')
  const head32 = readHead(decodeModel(base))
  const head16 = readHead(decodeModel(fp16), { float16: true })
  const worstW = Math.max(...head16.kernel.map((v, i) => Math.abs(v - head32.kernel[i]!) / Math.max(1e-3, Math.abs(head32.kernel[i]!))))
  t.ok(worstW < 1e-3, `float16 kernel within float16 rounding of the float32 one (max relative ${worstW.toExponential(2)})`)

  const manifest = { ...entry.manifest, precision: 'float16' as const }
  const model = await ManifestModel.open(fp16, manifest, { providers: ['cpu'], intraOpThreads: 1, interOpThreads: 1 })
  t.teardown(() => model.dispose())
  const input = model.batchBuffer(1)
  await decodeIntoTensor(admission, readFileSync(samplePhotos()[0]!), model.spec, input)
  const out = await model.run(input, 1, ['scores', 'featureMap'])
  t.same(await model.head(), head16, 'ManifestModel.head reads the float16 head from the bytes it was opened with')
  const maps = logitMaps(out.featureMap, entry.manifest.output.featureMap!, head16)
  const z = logitsFromMaps(maps, head16)
  const ez = Array.from(z, (v) => Math.exp(v - Math.max(...z)))
  const total = ez.reduce((a, b) => a + b, 0)
  const worstP = Math.max(...ez.map((v, i) => Math.abs(v / total - out.scores[i]!)))
  // The graph pools and applies the head in float16; here both run in float64 on its float32 copy of the map.
  t.ok(worstP < 5e-3, `softmax(mean Mᵢ + bᵢ) = p within float16 arithmetic: max |Δp| ${worstP.toExponential(2)}`)
})
