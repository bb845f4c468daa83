/**
 * Issue #22, item 1: every caller that turns bytes into pixels goes through the one image
 * admission (src/imaging/admission.ts), so each refuses the same files with the same code
 * and message, and admits the same ordinary photo. One environment for all of them, with
 * the limits lowered so that each refusal is cheap to provoke:
 *   JPEG_MAX_SCANS 1000, DECODE_MEMORY_BUDGET_BYTES 128 MiB, DECODE_TIMEOUT_MS 200
 * (process isolation and the inline lane at their defaults). The paths: the service's
 * /score, /explain?format=png and /labels/images (a real server), the `batch` and
 * `labels add-images` commands (real child processes), and fine-tuning features, the
 * float16 precision check and the conversion proof's photos (the library calls the CLI
 * makes, with the admission the CLI builds from the same environment).
 */
import { spawn } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import sharp from 'sharp'
import t from 'tap'
import { imageAdmission } from '../../src/cli/image-admission.js'
import { loadConfig } from '../../src/config/load.js'
import { extractFeatures } from '../../src/finetune/features.js'
import { imageId } from '../../src/imaging/decode.js'
import { scanModels, selectModel } from '../../src/models/catalog.js'
import { photoProofInputs } from '../../src/model-tools/proof-inputs.js'
import { tensorSpecOf } from '../../src/models/model-pipeline.js'
import { comparePrecision } from '../../src/scoring/precision-check.js'
import { manyScanJpeg } from '../helpers/many-scan-jpeg.js'
import { testModelsDir } from '../helpers/models.js'
import { projectRoot } from '../helpers/paths.js'
import { startTestService } from '../helpers/service.js'

const limits = { JPEG_MAX_SCANS: 1000, DECODE_MEMORY_BUDGET_BYTES: 128 * 1024 * 1024, DECODE_TIMEOUT_MS: 200 }
const env = Object.fromEntries(Object.entries(limits).map(([k, v]) => [k, String(v)]))
const modelsDir = await testModelsDir()

// A photo-like ordinary JPEG (640×480, within the inline lane).
const noise = Buffer.alloc(64 * 48 * 3)
for (let i = 0; i < noise.length; i++) noise[i] = (i * 2654435761) >>> 24
const ordinary = await sharp(noise, { raw: { width: 64, height: 48, channels: 3 } }).resize(640, 480).jpeg({ quality: 85 }).toBuffer()

/** Each file and what every path must say of it: 'ok', or the service's error code. */
const corpus: { name: string; bytes: Buffer; expected: string }[] = [
  { name: 'ordinary.jpg', bytes: ordinary, expected: 'ok' },
  { name: 'not-an-image.jpg', bytes: Buffer.from('this is a text file, whatever its name says'), expected: 'NIMA_UNSUPPORTED_MEDIA_TYPE' },
  // 2,647 scans, more than JPEG_MAX_SCANS: refused from the bytes, before any decode.
  { name: 'many-scans.jpg', bytes: manyScanJpeg({ width: 256, height: 256 }), expected: 'NIMA_TOO_MANY_SCANS' },
  // 81 MP in the frame header, more than MAX_INPUT_PIXELS (64 MP).
  { name: 'too-many-pixels.jpg', bytes: manyScanJpeg({ width: 9000, height: 9000, components: 1, maxScans: 1 }), expected: 'NIMA_IMAGE_TOO_LARGE' },
  // 4000×4000 progressive: about 184 MiB to decode, more than the whole 128 MiB budget.
  { name: 'over-budget.jpg', bytes: manyScanJpeg({ width: 4000, height: 4000, maxScans: 2 }), expected: 'NIMA_IMAGE_TOO_LARGE' },
  // 1,000 scans over 4 MP: admitted (within every limit, outside the inline lane), then about
  // 0.6 s of libjpeg on a quiet machine: its decode process is killed at 200 ms.
  { name: 'overrunning.jpg', bytes: manyScanJpeg({ width: 2000, height: 2000, maxScans: 1000 }), expected: 'NIMA_DECODE_TIMEOUT' },
]
const dir = t.testdir(Object.fromEntries(corpus.map((f) => [f.name, f.bytes])))
const pathOf = (name: string) => join(dir, name)
const expected = Object.fromEntries(corpus.map((f) => [f.name, f.expected]))

/** What the service answers for each file on /score: the reference the other paths are held to. */
const reference = new Map<string, { code: string; message: string }>()

/** Runs a command of this checkout (through tsx, as the tests run the source) with `env`; resolves with its output. */
function run(args: string[], extraEnv: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', ...args], {
      cwd: projectRoot,
      env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', MODELS_DIR: modelsDir, LOG_LEVEL: 'warn', ...env, ...extraEnv },
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
    child.on('close', (code) => resolve({ code, stdout, stderr }))
  })
}

t.test('the service: /score, /explain?format=png and /labels/images', async (t) => {
  const svc = await startTestService({ ...limits, SCORE_CACHE: 'off', LABELS_DB: ':memory:' })
  t.teardown(() => svc.server.shutdown())
  const post = async (path: string, body: Buffer) => {
    const res = await fetch(svc.url + path, { method: 'POST', body, headers: { 'content-type': 'image/jpeg' } })
    if (res.ok) return { code: 'ok', message: '', type: res.headers.get('content-type') }
    const json = (await res.json()) as { error: { code: string; message: string } }
    return { ...json.error, type: res.headers.get('content-type') }
  }
  for (const f of corpus) {
    const score = await post('/score', f.bytes)
    reference.set(f.name, score)
    t.equal(score.code, f.expected, `/score ${f.name}: ${score.code} ${score.message}`)
    const explain = await post('/explain?format=png', f.bytes)
    t.same([explain.code, explain.message], [score.code, score.message], `/explain?format=png ${f.name}: as /score`)
    if (explain.code === 'ok') t.equal(explain.type, 'image/png')
    const label = await post('/labels/images', f.bytes)
    t.same([label.code, label.message], [score.code, score.message], `/labels/images ${f.name}: as /score`)
  }
  t.match(reference.get('over-budget.jpg')!.message, /more than DECODE_MEMORY_BUDGET_BYTES \(128 MiB\)/, 'the budget, not the pixel limit, refused it')
  t.equal(svc.server.state.scorer?.decodeProcesses?.timeouts, 3, 'the overrunning decode was killed once per path')
})

t.test('batch: one line per file, the refused ones with the service’s code and message', async (t) => {
  const input = join(dir, 'batch.txt')
  writeFileSync(input, corpus.map((f) => pathOf(f.name)).join('\n') + '\n')
  const output = join(dir, 'batch.jsonl')
  const r = await run(['src/cli/batch-entry.ts', 'batch', '--input', input, '--output', output, '--no-cache'])
  t.equal(r.code, 0, r.stderr)
  t.match(r.stderr, /admission: MAX_INPUT_PIXELS 64000000, JPEG_MAX_SCANS 1000, DECODE_MEMORY_BUDGET_BYTES 128 MiB, DECODE_ISOLATION process \(DECODE_TIMEOUT_MS 200/)
  const lines = readFileSync(output, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { key: string; error?: { code: string; message: string }; scores?: unknown })
  for (const f of corpus) {
    const line = lines.find((l) => l.key === pathOf(f.name))
    t.ok(line, `a line for ${f.name}`)
    const got = line?.error ? [line.error.code, line.error.message] : ['ok', '']
    t.same(got, [reference.get(f.name)?.code, reference.get(f.name)?.message], `batch ${f.name}: ${got[0]}`)
  }
})

t.test('labels add-images: the refused files skipped with the service’s code and message', async (t) => {
  const db = join(dir, 'labels.sqlite')
  const r = await run(['src/cli/main.ts', 'labels', 'add-images', '--db', db, '--group', 'none', ...corpus.map((f) => pathOf(f.name))])
  t.equal(r.code, 0, r.stderr)
  t.match(r.stdout, /1 images added, 0 already present, 5 skipped/)
  for (const f of corpus.filter((f) => f.expected !== 'ok')) {
    const { code, message } = reference.get(f.name)!
    t.ok(r.stderr.includes(`skipped ${pathOf(f.name)}: ${code}: ${message}`), `labels ${f.name}: ${code}`)
  }
})

t.test('fine-tuning features, the precision check and the proof inputs: the admission the CLI builds', async (t) => {
  const io = { out: () => {}, err: () => {}, env }
  const admission = imageAdmission(io)
  t.teardown(() => admission.close())
  t.equal(loadConfig(env).DECODE_TIMEOUT_MS, 200)
  const { entries } = await scanModels(modelsDir)
  const base = selectModel(entries, 'aesthetic')!

  for (const f of corpus) {
    const source = { id: imageId(f.bytes), load: async () => f.bytes }
    const got = await extractFeatures([source], { modelPath: base.modelPath, manifest: base.manifest, admission }).then(
      () => 'ok',
      (err: { cause?: { code?: string } }) => err.cause?.code ?? String(err),
    )
    t.equal(got, expected[f.name], `features ${f.name}: ${got}`)
  }

  const paths = corpus.map((f) => pathOf(f.name))
  const skippedAs = (skipped: { photo: string; reason: string }[]) => Object.fromEntries(skipped.map((s) => [s.photo, s.reason]))
  const refusedMessages = Object.fromEntries(corpus.filter((f) => f.expected !== 'ok').map((f) => [pathOf(f.name), reference.get(f.name)?.message]))

  const precision = await comparePrecision(base.manifest, base.modelPath, base.modelPath, paths, admission)
  t.equal(precision.images, 1, 'the precision check compared the ordinary photo')
  t.same(skippedAs(precision.skipped), refusedMessages, 'and skipped the others with the service’s messages')

  const proof = await photoProofInputs(paths, paths.length, tensorSpecOf(base.manifest), 64_000_000, admission)
  t.same(proof.labels, ['ordinary.jpg'], 'the proof takes the ordinary photo')
  t.same(skippedAs(proof.skipped), refusedMessages, 'and skips the others with the service’s messages')
  t.equal(admission.decodeProcesses?.timeouts, 3, 'the overrunning decode was killed each time')
})
