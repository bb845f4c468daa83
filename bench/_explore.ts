import { applyLevers } from './lib/levers.js'
import { loadSampleJpegs } from './lib/images.js'
import { loadModels, measureDecode, measureModel, preprocessAll, measurePipeline } from './lib/raw.js'
const intra = Number(process.env.INTRA ?? 0)
if (process.env.SPIN) applyLevers({ ortSpinning: process.env.SPIN === '1' })
const images = loadSampleJpegs('/work/shared/images')
const models = await loadModels('/work/main/.cache/test-models-v1', ['aesthetic','technical'], { providers: ['cpu'], intraOpThreads: intra, interOpThreads: 1 })
const tensors = await preprocessAll(images, models[0]!.spec)
console.log('intra', intra, 'spin', process.env.SPIN)
for (const c of [2,4]) console.log(JSON.stringify(await measureDecode(images, c, 1500)))
for (const b of [1,4,8,16]) console.log(JSON.stringify(await measureModel(models[0]!, tensors, b, 1500)))
console.log(JSON.stringify(await measurePipeline(images, models, { batch: 8, decodeConcurrency: 2, mode: 'serial', warmupMs: 500, ms: 3000 })))
