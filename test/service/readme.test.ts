/**
 * The README's examples run as written (issue 24): the shell blocks of "Try it in 30
 * seconds" in one bash, as a reader pastes them one after another (the service started in
 * the background with `npm start`, the file server, the curls, the final kill), then the
 * "Command line" block. They run in a scratch copy of the checkout (every top-level entry
 * linked, `../shared` beside it), so their files (nima-serve.log, photos.csv, results)
 * stay out of the repository. The only edit: the ports 8080 and 8000 become free ones
 * (PORT for `npm start`), since tests never take fixed ports.
 *
 * It runs the built service (dist/, which `npm ci` builds), as the README's reader does.
 * Checked: every command exits 0; the sample answer in the README is what its own curl
 * gets (rounded as printed, see scripts/readme-sample.ts); the /rank examples rank every
 * photo and mark the `select` picks; `kill %1 %2` stops the service; npm and npx print no
 * warning; the CLI commands write what they say.
 */
import { spawn } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import t, { type Test } from 'tap'
import { projectRoot, sharedImages } from '../helpers/paths.js'
import { committedSample, formatScoreSample, section, shellBlocks, splitJson } from '../helpers/readme.js'

const readme = readFileSync(join(projectRoot, 'README.md'), 'utf8')
if (!existsSync(join(projectRoot, 'dist/main.cjs')) || !existsSync(join(projectRoot, 'node_modules/.bin/nima-serve'))) {
  throw new Error('the README test runs the built checkout: run `npm ci` (or `npm run prepare`) first')
}

// A scratch "clone": the checkout's entries linked, ../shared beside it.
const scratch = mkdtempSync(join(tmpdir(), 'nima-readme-'))
t.teardown(() => rmSync(scratch, { recursive: true, force: true }))
const project = join(scratch, 'nima-serve')
symlinkSync(resolve(sharedImages, '..'), join(scratch, 'shared'))
mkdirSync(project)
for (const entry of readdirSync(projectRoot)) if (entry !== '.git') symlinkSync(join(projectRoot, entry), join(project, entry))

async function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const server = createServer()
    server.once('error', fail)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => ok(port))
    })
  })
}

interface Run {
  code: number | null
  stdout: string
  stderr: string
}

/** The blocks in one bash, `set -e`, a marker line before each so the output can be split. */
async function runBlocks(t: Test, blocks: string[], env: Record<string, string>, timeoutMs: number): Promise<Run & { outputs: string[] }> {
  const script = ['set -e', ...blocks.map((b, i) => `printf '\\n@@block ${i}@@\\n'\n${b}`)].join('\n')
  // Its own process group: whatever the blocks leave running is killed with it.
  const child = spawn('bash', ['-c', script], { cwd: project, env: { ...process.env, ...env }, detached: true, stdio: ['ignore', 'pipe', 'pipe'] })
  t.teardown(() => {
    try {
      process.kill(-child.pid!, 'SIGKILL')
    } catch {}
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d) => (stdout += d))
  child.stderr.on('data', (d) => (stderr += d))
  const timer = setTimeout(() => process.kill(-child.pid!, 'SIGKILL'), timeoutMs)
  const code = await new Promise<number | null>((ok) => child.on('close', ok))
  clearTimeout(timer)
  const outputs = stdout.split(/\n@@block \d+@@\n/).slice(1)
  return { code, stdout, stderr, outputs }
}

const tryIt = shellBlocks(section(readme, 'Try it in 30 seconds'))
const cli = shellBlocks(section(readme, 'Command line'))

t.test('"Try it in 30 seconds" runs as written against a fresh service', async (t) => {
  const [service, files] = [await freePort(), await freePort()]
  const blocks = tryIt.map((b) => b.replaceAll('8080', String(service)).replaceAll('8000', String(files)))
  t.equal(blocks.length, 5, 'start, score, rank URLs, rank uploads, stop')
  const run = await runBlocks(t, blocks, { PORT: String(service) }, 120_000)
  t.equal(run.code, 0, `every block exits 0${run.code === 0 ? '' : `\n${run.stdout}\n${run.stderr}`}`)
  const [, score, rankUrls, rankUploads] = run.outputs.map((o) => splitJson(o) as any[])

  t.equal(score?.length, 2, 'two /score answers')
  t.equal(formatScoreSample(score![0]), committedSample(readme), 'the README sample is the answer its curl gets (run `npm run readme-sample` after changing the models or the answer)')
  t.same(Object.keys(score![1].scores), ['technical'], '?models=technical scores with that model only')
  t.same(score![1].combined, { score: score![1].scores.technical.mean, weights: { technical: 1 } }, 'its combined score is the technical mean, its weight 1')

  const urls = rankUrls![0]
  t.same(urls.failed, [], 'no URL refused (the service was started with URL_ALLOWLIST)')
  t.same(urls.ranked.flatMap((e: any) => [e.id, ...e.nearDuplicates.map((n: any) => n.id)]).sort(), ['lobby', 'room', 'room-blurred'], 'all three ranked or folded')
  t.same(urls.ranked.find((e: any) => e.id === 'room')?.nearDuplicates.map((n: any) => n.id), ['room-blurred'], 'the blurred room folded into the sharp one, as the README says')

  const uploads = rankUploads![0]
  t.same(uploads.select, { k: 2, diversity: 0.3 })
  t.same(uploads.ranked.map((e: any) => e.selected), uploads.ranked.map((_: unknown, i: number) => i < 2), 'the two picks come first, marked selected')

  // kill returns at once; the service drains (in-flight requests, at most GRACE) before it exits.
  const logFile = join(project, 'nima-serve.log')
  for (let i = 0; i < 150 && !readFileSync(logFile, 'utf8').includes('"msg":"stopped cleanly"'); i++) await new Promise((ok) => setTimeout(ok, 100))
  const log = readFileSync(logFile, 'utf8')
  t.match(log, /"msg":"stopped cleanly"/, '`kill %1 %2` reached the service, which drained and stopped')
  t.notMatch(log, /npm warn/i, 'npm start printed no warning')
  t.equal(await fetch(`http://127.0.0.1:${service}/healthz`).then(() => 'up', () => 'down'), 'down', 'nothing left listening')
})

t.test('the "Command line" block runs as written, and npx prints no warning', async (t) => {
  t.equal(cli.length, 1)
  const lines = cli[0]!.split('\n').filter((l) => l.trim() !== '')
  const run = await runBlocks(t, lines, {}, 120_000)
  t.equal(run.code, 0, `every command exits 0${run.code === 0 ? '' : `\n${run.stdout}\n${run.stderr}`}`)
  t.notMatch(run.stderr, /npm warn|npm WARN/, `no npm warning${run.stderr ? `: ${run.stderr.slice(0, 400)}` : ''}`)
  const out = (i: number) => run.outputs[i] ?? ''
  t.match(out(0), /labels summary/, '--help lists every command')
  t.match(out(1), /\n {2}PORT=8080\n/, 'serve --help lists the settings with their defaults')
  t.match(out(2), /^aesthetic\t/m, 'models list')
  const results = readFileSync(join(project, 'results.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l))
  t.equal(results.filter((r) => r.combined).length, 3, 'batch scored the three photos of photos.csv')
  const best = readFileSync(join(project, 'best.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l))
  t.same(best.map((h) => [h.hotel_id, h.ranked.length]).sort(), [['1', 2], ['2', 1]], 'rank-hotels: one line per hotel')
})
