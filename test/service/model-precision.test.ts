/**
 * MODEL_PRECISION=float16 on the real service: the variants serve, /models says so, the
 * scores stay within the 0.02 of float32, and a model without a variant falls back
 * to float32 with a warning instead of failing to start.
 */
import { cp, readFile } from 'node:fs/promises'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import pino from 'pino'
import t from 'tap'
import { loadConfig } from '../../src/config/load.js'
import { createMetrics } from '../../src/metrics/metrics.js'
import { scanModels, selectModel } from '../../src/models/catalog.js'
import { installFloat16Variant } from '../../src/model-tools/float16-variant.js'
import { loadScorer } from '../../src/scoring/load-scorer.js'
import { testModelsDir } from '../helpers/models.js'
import { sharedImages } from '../helpers/paths.js'
import { startTestService } from '../helpers/service.js'

const photo = await readFile(join(sharedImages, 'idealo/42039.jpg')).catch(() => undefined)

async function score(url: string, body: Buffer): Promise<any> {
  const res = await fetch(`${url}/score`, { method: 'POST', body, headers: { 'content-type': 'image/jpeg' } })
  if (res.status !== 200) throw new Error(`POST /score: ${res.status} ${await res.text()}`)
  return res.json()
}

t.test('float16 variants serve when asked for, within 0.02 of float32', { skip: photo ? false : 'needs ../shared/images/idealo/42039.jpg' }, async (t) => {
  const dir = t.testdir()
  await cp(await testModelsDir(), dir, { recursive: true })
  const { entries } = await scanModels(dir)
  // Only the aesthetic model gets a variant: the technical one shows the fallback.
  await installFloat16Variant(dir, selectModel(entries, 'aesthetic')!)

  const half = await startTestService({ MODELS_DIR: dir, MODEL_PRECISION: 'float16' })
  t.teardown(() => half.server.shutdown())
  const full = await startTestService({ MODELS_DIR: dir })
  t.teardown(() => full.server.shutdown())

  const models = (await (await fetch(`${half.url}/models`)).json()) as any
  t.same(
    models.models.map((m: any) => [m.id, m.version, m.precision, m.synthetic]),
    [
      ['aesthetic', 'synthetic-s1007-fp16', 'float16', true],
      ['technical', 'synthetic-s1011', 'float32', true],
    ],
  )
  t.equal(models.models[0].provenance.baseModel, 'aesthetic/synthetic-s1007')
  const plain = (await (await fetch(`${full.url}/models`)).json()) as any
  t.same(plain.models.map((m: any) => m.precision), ['float32', 'float32'], 'float32 stays the default')

  const a = await score(half.url, photo!)
  const b = await score(full.url, photo!)
  t.equal(a.models.aesthetic.version, 'synthetic-s1007-fp16', 'the response names the file that scored')
  const delta = Math.abs(a.scores.aesthetic.mean - b.scores.aesthetic.mean)
  t.comment(`aesthetic mean float16 ${a.scores.aesthetic.mean} vs float32 ${b.scores.aesthetic.mean}: |Δ| ${delta.toExponential(2)}`)
  t.ok(delta <= 0.02 && delta > 0, `|Δmean| ${delta} is in (0, 0.02]`)
  t.equal(a.scores.technical.mean, b.scores.technical.mean, 'the model without a variant scores exactly as float32')
})

t.test('a missing variant is a warning that names the command to make one', async (t) => {
  const lines: string[] = []
  const sink = new Writable({
    write(chunk, _encoding, done) {
      lines.push(String(chunk))
      done()
    },
  })
  const config = loadConfig({}, { MODELS_DIR: await testModelsDir(), MODEL_PRECISION: 'float16', BATCH_MAX_SIZE: 1 })
  const scorer = await loadScorer(config, pino({ level: 'warn' }, sink))
  t.teardown(() => scorer.dispose())
  t.same([...scorer.models.values()].map((m) => m.manifest.precision ?? 'float32'), ['float32', 'float32'])
  const warnings = lines.map((l) => JSON.parse(l) as { msg: string }).filter((l) => /has no float16 variant/.test(l.msg))
  t.equal(warnings.length, 2, 'one warning per model')
  t.match(warnings[0]!.msg, /MODEL_PRECISION=float16 but aesthetic\/synthetic-s1007 has no float16 variant; serving float32 \(make one with `npx nima-serve models fp16 --check <photos>`\)/)
})
