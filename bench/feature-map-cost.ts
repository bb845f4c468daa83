/**
 * npx tsx bench/feature-map-cost.ts OLD_DIR NEW_DIR [--rounds N] [--batch B]
 *
 * OLD_DIR and NEW_DIR: installed model versions (model.onnx + manifest.json), e.g.
 * .cache/test-models-v2/aesthetic/synthetic-s1007 and .cache/test-models-v3/aesthetic/synthetic-s1007.
 *
 * What the `feature_map` graph output costs a run that asks for `scores` only (what /score's
 * micro-batches do), in process, without HTTP: the same weights built without and with the
 * output, run alternately (A B A B …) so both see the same machine noise. Prints the median
 * wall and CPU time per image of each, and the same for a run that also asks for the
 * feature map (what /explain does). Issue #16: "/score as fast as before".
 */
import { parseArgs } from 'node:util'
import { join } from 'node:path'
import { readManifest } from '../src/models/manifest.js'
import { ManifestModel } from '../src/models/model-pipeline.js'

const { values: args, positionals } = parseArgs({
  allowPositionals: true,
  options: { rounds: { type: 'string', default: '40' }, batch: { type: 'string', default: '8' } },
})
if (positionals.length !== 2) throw new Error('usage: feature-map-cost.ts OLD_DIR NEW_DIR [--rounds N] [--batch B]')
const rounds = Number(args.rounds)
const batch = Number(args.batch)
const [oldModel, newModel] = await Promise.all(
  positionals.map(async (dir) => ManifestModel.open(join(dir, 'model.onnx'), await readManifest(join(dir, 'manifest.json')), { providers: ['cpu'], intraOpThreads: 1, interOpThreads: 1 })),
)
if (oldModel!.hasOutput('featureMap') || !newModel!.hasOutput('featureMap')) throw new Error('expected OLD_DIR without the feature_map output and NEW_DIR with it')
const input = new Float32Array(batch * 224 * 224 * 3).map((_, i) => Math.sin(i) * 0.9)

type Case = { name: string; run: () => Promise<unknown> }
const cases: Case[] = [
  { name: 'old file, scores', run: () => oldModel!.run(input, batch, ['scores']) },
  { name: 'new file, scores', run: () => newModel!.run(input, batch, ['scores']) },
  { name: 'new file, scores + feature_map', run: () => newModel!.run(input, batch, ['scores', 'featureMap']) },
]
const samples = new Map(cases.map((c) => [c.name, { wall: [] as number[], cpu: [] as number[] }]))
for (const c of cases) await c.run() // warm-up
for (let r = 0; r < rounds; r++) {
  for (const c of r % 2 === 0 ? cases : [...cases].reverse()) {
    const cpu0 = process.cpuUsage()
    const t0 = performance.now()
    await c.run()
    const wall = performance.now() - t0
    const cpu = process.cpuUsage(cpu0)
    samples.get(c.name)!.wall.push(wall / batch)
    samples.get(c.name)!.cpu.push((cpu.user + cpu.system) / 1000 / batch)
  }
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
process.stdout.write(`batch ${batch}, ${rounds} alternating rounds, 1 intra-op thread; ms per image (median):\n\n| run | wall | CPU |\n| --- | --- | --- |\n`)
for (const [name, s] of samples) process.stdout.write(`| ${name} | ${median(s.wall).toFixed(2)} | ${median(s.cpu).toFixed(2)} |\n`)
await Promise.all([oldModel!.dispose(), newModel!.dispose()])
