import { spawn } from 'node:child_process'
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import type { BatchSummary } from '../../src/batch/pipeline.js'
import { testModelsDir } from '../helpers/models.js'
import { projectRoot } from '../helpers/paths.js'
import { readResults, smallPhotos } from './helpers.js'

interface Child {
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>
  kill: (signal: NodeJS.Signals) => void
}

/** The real CLI in a child process, as a Kubernetes pod would run it. */
function cli(args: string[], env: Record<string, string>): Child {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/cli/batch-entry.ts', 'batch', ...args], {
    cwd: projectRoot,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
  return {
    done: new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }))),
    kill: (signal) => child.kill(signal),
  }
}

/** Complete lines in the file now (a torn last line not counted). */
function completeLines(path: string): number {
  if (!existsSync(path)) return 0
  return readFileSync(path, 'utf8').split('\n').length - 1
}

async function waitForLines(path: string, n: number, child: Child, timeoutMs = 40_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let exited = false
  void child.done.then(() => (exited = true))
  while (completeLines(path) < n) {
    if (exited) throw new Error(`the child exited before writing ${n} lines`)
    if (Date.now() > deadline) throw new Error(`no ${n} lines in ${path} after ${timeoutMs} ms`)
    await sleep(25)
  }
}

const dir = mkdtempSync(join(tmpdir(), 'nima-resume-test-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))

const photos = smallPhotos(4)
const N = 24
const records = Array.from({ length: N }, (_, i) => JSON.stringify({ hotel_id: `h${i % 4}`, image_id: `i${i}`, path: photos[i % photos.length] }))
records.splice(5, 0, '{"hotel_id": "h0", "image_id": "cut-short"') // unparsable: key line:6
records.push(JSON.stringify({ hotel_id: 'h1', image_id: 'gone', path: join(dir, 'missing.jpg') }))
const input = join(dir, 'input.jsonl')
writeFileSync(input, records.join('\n') + '\n')
const expectedKeys = [...Array.from({ length: N }, (_, i) => `h${i % 4}/i${i}`), 'line:6', 'h1/gone'].sort()
const output = join(dir, 'results.jsonl')
// No cache, so every line really runs the models; small batches and flushes every 3 lines.
const common = ['--input', input, '--output', output, '--no-cache', '--batch-size', '2', '--concurrency', '4', '--flush-lines', '3', '--flush-ms', '60000']

t.test('SIGKILL mid-run, a torn last line, SIGTERM, then --resume: every key exactly once, nothing lost', async (t) => {
  const env = { MODELS_DIR: await testModelsDir() }

  // 1. Killed without warning once some lines are durable.
  const first = cli(common, env)
  await waitForLines(output, 6, first)
  first.kill('SIGKILL')
  const r1 = await first.done
  t.equal(r1.signal, 'SIGKILL')
  const afterKill = completeLines(output)
  t.ok(afterKill >= 6 && afterKill < expectedKeys.length, `killed mid-way (${afterKill} lines)`)

  // 2. A write cut short at kill time leaves a partial last line.
  const torn = '{"key":"h3/i3","line":4,"hotel_id":"h3","sour'
  appendFileSync(output, torn)

  // 3. Without --resume an existing output is refused rather than appended to twice.
  const refused = await cli(common, env).done
  t.equal(refused.code, 1)
  t.match(refused.stderr, /already exists .*add --resume/)

  // 4. Resume, and stop it gracefully with SIGTERM: in-flight images finish and are flushed.
  const second = cli([...common, '--resume'], env)
  await waitForLines(output, afterKill + 4, second)
  second.kill('SIGTERM')
  const r2 = await second.done
  t.equal(r2.code, 143, 'exit status 143 after SIGTERM')
  const s2 = JSON.parse(r2.stdout.trim().split('\n').at(-1)!) as BatchSummary
  t.equal(s2.interrupted, true)
  t.equal(s2.skippedResume, afterKill)
  t.equal(s2.resumed?.tornBytes, Buffer.byteLength(torn), 'the torn line was cut off')
  t.match(r2.stderr, /SIGTERM received/)
  t.notOk(readFileSync(output, 'utf8').includes(torn), 'torn bytes are gone')
  t.ok(readFileSync(output, 'utf8').endsWith('\n'), 'SIGTERM left no torn line')

  // 5. Resume to the end.
  const third = await cli([...common, '--resume'], env).done
  t.equal(third.code, 0, 'the resumed run finishes')
  const s3 = JSON.parse(third.stdout.trim().split('\n').at(-1)!) as BatchSummary
  const rows = readResults(output) // throws on any unparsable line
  t.equal(s3.skippedResume + s3.written, expectedKeys.length)
  t.same(rows.map((r) => r.key).sort(), expectedKeys, 'every input key exactly once')
  t.same(
    rows.filter((r) => r.error).map((r) => [r.key, r.error!.code]).sort(),
    [
      ['h1/gone', 'NIMA_MISSING_IMAGE'],
      ['line:6', 'NIMA_INVALID_REQUEST'],
    ],
  )
  t.ok(rows.filter((r) => !r.error).every((r) => r.scores?.['aesthetic'] && r.scores['technical'] && r.cached === false))

  // 6. --retry-failed drops the failed lines and runs those keys again (they fail again here).
  writeFileSync(join(dir, 'missing.jpg'), readFileSync(photos[0]!))
  const fourth = await cli([...common, '--retry-failed'], env).done
  t.equal(fourth.code, 0, 'the retry run finishes')
  const s4 = JSON.parse(fourth.stdout.trim().split('\n').at(-1)!) as BatchSummary
  t.match(s4, { written: 2, scored: 1, failed: 1, skippedResume: N, resumed: { failedDropped: 2 } })
  const final = readResults(output)
  t.same(final.map((r) => r.key).sort(), expectedKeys, 'still one line per key')
  t.equal(final.find((r) => r.key === 'h1/gone')!.error, undefined, 'the file that appeared is now scored')
})
