import { readFileSync } from 'node:fs'
import t from 'tap'
import { ImageAdmission } from '../../src/imaging/admission.js'
import { scanModels, selectModel } from '../../src/models/catalog.js'
import { decodeIntoTensor, inputKeyOf, ManifestModel, tensorSpecOf } from '../../src/models/model-pipeline.js'
import { testModelsDir } from '../helpers/models.js'
import { samplePhotos } from '../helpers/paths.js'

const { entries } = await scanModels(await testModelsDir())
const aesthetic = selectModel(entries, 'aesthetic')!
const technical = selectModel(entries, 'technical')!

t.test('a manifest input spec becomes the tensor spec; other specs are refused, not guessed', async (t) => {
  const spec = tensorSpecOf(aesthetic.manifest)
  t.same([spec.width, spec.height, spec.lut[0], spec.lut[255]], [224, 224, -1, 1])
  t.equal(inputKeyOf(aesthetic.manifest), inputKeyOf(technical.manifest), 'both NIMA models share one tensor')
  const bilinear = { ...aesthetic.manifest, input: { ...aesthetic.manifest.input, resize: 'bilinear' } } as unknown as typeof aesthetic.manifest
  t.throws(() => tensorSpecOf(bilinear), /unsupported input spec NHWC\/bilinear\/fill/)
})

t.test('bytes → tensor slot → both outputs, one row per image', async (t) => {
  const model = await ManifestModel.open(aesthetic.modelPath, aesthetic.manifest, { providers: ['cpu'], intraOpThreads: 1, interOpThreads: 1 })
  t.teardown(() => model.dispose())
  const input = model.batchBuffer(2)
  const photo = readFileSync(samplePhotos()[0]!)
  await decodeIntoTensor(new ImageAdmission({ maxInputPixels: 64_000_000 }), photo, model.spec, input, 1)
  t.ok(input.subarray(0, model.tensorSize).every((v) => v === 0), 'slot 0 untouched')
  t.ok(input.subarray(model.tensorSize).some((v) => v !== 0), 'slot 1 written')
  const out = await model.run(input, 2, ['scores', 'features'])
  t.equal(out.scores.length, 20)
  t.equal(out.features.length, 2 * aesthetic.manifest.output.features!.size)
  const sums = [0, 1].map((i) => out.scores.subarray(i * 10, i * 10 + 10).reduce((a, b) => a + b, 0))
  for (const s of sums) t.ok(Math.abs(s - 1) < 1e-5, 'each row is a distribution')
  await t.rejects(decodeIntoTensor(new ImageAdmission({ maxInputPixels: 100 }), photo, model.spec, input), { code: 'NIMA_IMAGE_TOO_LARGE' }, 'the pixel limit is the admission’s')
})
