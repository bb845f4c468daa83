/**
 * Golden check against idealo's own published outputs (issue #23): only possible with the
 * real weights, which cannot be downloaded in CI or here. Point NIMA_WEIGHTS_DIR at a
 * folder holding weights_mobilenet_{aesthetic_0.07,technical_0.11}.hdf5 to run it.
 */
import { readFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import t from 'tap'
import { gitBlobSha1 } from '../../src/models/integrity.js'
import { readKerasFile } from '../../src/model-tools/keras-hdf5.js'
import { buildOnnxModel, GRAPH_NAMES } from '../../src/models/onnx-graph.js'
import { IDEALO_SOURCES } from '../../src/model-tools/sources.js'
import { float16Model } from '../../src/model-tools/float16-variant.js'
import { idealoInputSpec, nimaOutputSpec, type ModelManifest } from '../../src/models/manifest.js'
import { comparePrecision } from '../../src/scoring/precision-check.js'
import { loadConfig } from '../../src/config/load.js'
import { admissionOptions, ImageAdmission } from '../../src/imaging/admission.js'
import { samplePhotos } from '../helpers/paths.js'
import { imagesDir, loadIdealoInput, referenceDir } from './idealo-input.js'
import { meanOf } from '../../src/scoring/distribution.js'
import { runNima } from './run-onnx.js'

/**
 * idealo's numbers come from Keras/TF1 with PIL decoding; ours use libjpeg-turbo via sharp
 * and float32 onnxruntime. 0.05 on a 1..10 mean absorbs decoder differences while still
 * catching any real conversion error (a wrong padding alone moves means by ~0.1 or more).
 */
const TOLERANCE = 0.05

const weightsDir = process.env['NIMA_WEIGHTS_DIR']

/** Just the input/output contract comparePrecision reads; the rest is not installed. */
function realManifest(task: 'aesthetic' | 'technical'): ModelManifest {
  return {
    id: task,
    version: 'golden',
    task,
    architecture: 'mobilenet_v1',
    file: 'model.onnx',
    sha256: '0'.repeat(64),
    synthetic: false,
    input: idealoInputSpec(),
    output: nimaOutputSpec([GRAPH_NAMES.featureMap]),
    provenance: { kind: 'idealo-keras', tool: 'golden test', createdAt: new Date().toISOString() },
  }
}

if (weightsDir === undefined || weightsDir === '') {
  t.test('golden scores of the real idealo models', { skip: 'NIMA_WEIGHTS_DIR not set: real idealo weights cannot be downloaded here' }, () => {})
} else {
  const published = JSON.parse(await readFile(join(referenceDir, 'idealo-published-scores.json'), 'utf8')) as {
    issue_23: Record<string, Record<string, number> | string>
  }
  const photos = Object.keys(published.issue_23).filter((k) => k.startsWith('idealo/'))
  const images = await Promise.all(photos.map((p) => loadIdealoInput(resolve(imagesDir, p))))

  for (const source of IDEALO_SOURCES) {
    t.test(`${source.task}: mean scores match idealo issue #23 within ${TOLERANCE}`, async (t) => {
      const path = join(weightsDir, source.fileName)
      const blob = gitBlobSha1(await readFile(path))
      if (blob !== source.gitBlobSha1) t.comment(`warning: ${path} has git blob sha1 ${blob}, not the pinned ${source.gitBlobSha1}`)
      const file = await readKerasFile(path)
      t.comment(`${source.task}: ${file.padding.padding} padding (${file.padding.reason})`)
      const { scores } = await runNima(buildOnnxModel(file.weights, { padding: file.padding.padding }), images)
      // The other convention too, for the record: if it lands closer, the detection is wrong.
      const other = file.padding.padding === 'keras' ? 'symmetric' : 'keras'
      const { scores: otherScores } = await runNima(buildOnnxModel(file.weights, { padding: other }), images)
      let worst = 0
      photos.forEach((photo, i) => {
        const expected = (published.issue_23[photo] as Record<string, number>)[source.task]!
        const actual = meanOf(scores[i]!)
        const diff = actual - expected
        worst = Math.max(worst, Math.abs(diff))
        const otherDiff = meanOf(otherScores[i]!) - expected
        t.comment(
          `${source.task} ${photo}: ours ${actual.toFixed(4)}, idealo ${expected.toFixed(4)}, Δ ${diff >= 0 ? '+' : ''}${diff.toFixed(4)}` +
            ` (with ${other} padding Δ ${otherDiff >= 0 ? '+' : ''}${otherDiff.toFixed(4)})`,
        )
        t.ok(Math.abs(diff) <= TOLERANCE, `${photo}: |Δ| ${Math.abs(diff).toFixed(4)} <= ${TOLERANCE}`)
      })
      t.comment(`${source.task}: worst |Δmean| ${worst.toFixed(4)} (tolerance ${TOLERANCE})`)

      // The float16 variant of the real model, on every sample photo: the issue's 0.02.
      const float32 = buildOnnxModel(file.weights, { padding: file.padding.padding })
      const half = float16Model(float32, source.task)
      // The service's admission with its default settings, as `models fp16 --check` uses it.
      const admission = new ImageAdmission({ ...admissionOptions(loadConfig({}), 1), decodeProcessStart: 'when-needed' })
      t.teardown(() => admission.close())
      const check = await comparePrecision(realManifest(source.task), float32, half.onnx, samplePhotos(), admission)
      t.comment(
        `${source.task} float16 on ${check.images} photos: |Δmean| max ${check.maxAbsDeltaMean.toExponential(2)} (${check.worst}), ` +
          `mean ${check.meanAbsDeltaMean.toExponential(2)}; |Δp| max ${check.maxAbsDeltaP.toExponential(2)}`,
      )
      t.ok(check.maxAbsDeltaMean <= 0.02, `float16 max |Δmean| ${check.maxAbsDeltaMean} <= 0.02`)
    })
  }
}
