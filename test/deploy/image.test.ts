/**
 * The built image (npm run image:build) run as the cluster runs it: the Deployment's own
 * securityContext, resources, env and /tmp volume, read from k8s/base (test/deploy/
 * container.ts turns them into engine flags), on podman or docker (scripts/image/engine.sh).
 * Then the contract: ready within the startup probe's budget; /score, /rank and the
 * /explain PNG (legend set in a real font, no fontconfig complaint); jemalloc mapped; the
 * image's HEALTHCHECK passes; the preStop hook runs; SIGTERM with uploads in flight answers
 * them and exits 0 within the grace period. The NIMA_MODELS=none image serves models from a
 * read-only volume and picks up a new version on SIGHUP; the batch Job's command runs in the
 * image; the app layers stay within their size budget.
 *
 * Where no engine runs, or the images are missing or were built from other sources, the
 * file is skipped saying so, except in CI (.ci/run builds them first) and under
 * `npm run image:test` (NIMA_REQUIRE_IMAGE=1), where that fails.
 */
import { execFileSync } from 'node:child_process'
import { chmodSync, cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import sharp from 'sharp'
import t, { type Test } from 'tap'
import { testModelsDir } from '../helpers/models.js'
import { shardOf } from '../../src/batch/shard.js'
import { samplePhotos } from '../helpers/paths.js'
import { engine, podRun, type PodRun } from './container.js'
import { readYaml, repo, SAMPLE_JPEG, SECOND_JPEG } from './helpers.js'

// Image pulls, builds and starts under a loaded machine take a while; tap's 120 s per file is
// not enough for three containers and the batch run.
t.setTimeout(600_000)

const IMAGE = process.env['NIMA_IMAGE'] ?? 'nima-serve:local'
const IMAGE_NONE = `${IMAGE}-none`
/** The app layers' budget: the image minus its base (issue 27). */
const APP_LAYERS_MAX_MB = 300

async function unavailable(): Promise<string | undefined> {
  const which = (await engine(['--which'])).stdout.trim()
  if (which === 'none' || which === '') return 'no container engine: neither a docker daemon nor podman (apt-get install podman runc)'
  let hash: string
  try {
    hash = execFileSync(repo('scripts/image/source-hash.sh'), { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim()
  } catch (err) {
    return `cannot hash the build context (scripts/image/source-hash.sh needs bash, find and sha256sum): ${err instanceof Error ? err.message.split('\n')[0] : String(err)}`
  }
  for (const image of [IMAGE, IMAGE_NONE]) {
    const r = await engine(['image', 'inspect', '--format', '{{index .Config.Labels "nima-serve.source"}}', image])
    if (r.code !== 0) return `${which}: ${image} is not built (npm run image:base && npm run image:build)`
    if (r.stdout.trim() !== hash) return `${which}: ${image} was built from other sources (label ${r.stdout.trim() || 'none'}, tree ${hash}): npm run image:build`
  }
  if (samplePhotos().length < 16) return 'the sample photos (../shared/images) are missing'
  return undefined
}

const why = await unavailable()
if (why !== undefined && process.env['CI']) t.fail(`${why}; CI (CI=${process.env['CI']}) builds the images before the suite (.ci/run)`)
else if (why !== undefined && process.env['NIMA_REQUIRE_IMAGE']) t.fail(why)
else if (why !== undefined) t.plan(0, `skipped: ${why}`)

const deployment = readYaml('k8s/base/deployment.yaml')
const pod = deployment.spec.template.spec
const api = pod.containers[0]
let containers = 0

interface Running {
  name: string
  url: string
  run: PodRun
  logs(): Promise<string>
  exec(...argv: string[]): Promise<{ code: number; stdout: string; stderr: string }>
}

/** Kills and removes a container and its anonymous volumes (docker's rm has no --time). */
async function remove(name: string): Promise<void> {
  await engine(['kill', name])
  await engine(['rm', '--force', '--volumes', name])
}

/** `engine run -d` of `image` with the pod's settings; removed on teardown. */
async function start(t: Test, image: string, run: PodRun, extra: string[] = []): Promise<Running> {
  const name = `nima-image-test-${process.pid}-${++containers}`
  t.teardown(() => remove(name))
  const started = await engine(['run', '--detach', '--name', name, ...run.flags, ...extra, image, ...run.argv], { timeoutMs: 120_000 })
  if (started.code !== 0) throw new Error(`${image} did not start: ${started.stderr}`)
  const port = await engine(['port', name, String(run.ports[0])])
  const address = port.stdout.trim().split('\n').at(-1) ?? ''
  return {
    name,
    url: `http://${address.replace('0.0.0.0', '127.0.0.1')}`,
    run,
    logs: async () => {
      const r = await engine(['logs', name])
      return r.stdout + r.stderr
    },
    exec: (...argv) => engine(['exec', name, ...argv]),
  }
}

/** Milliseconds until /readyz answers 200, or undefined if not within `budgetMs` (or the container exited). */
async function untilReady(c: Running, budgetMs: number): Promise<number | undefined> {
  const began = Date.now()
  while (Date.now() - began < budgetMs) {
    if (await fetch(`${c.url}/readyz`, { signal: AbortSignal.timeout(2000) }).then((r) => r.ok, () => false)) return Date.now() - began
    const state = await engine(['inspect', '--format', '{{.State.Running}}', c.name])
    if (state.stdout.trim() !== 'true') return undefined
    await sleep(250)
  }
  return undefined
}

/** The startup probe's whole allowance: the kubelet restarts a container that has not passed it by then. */
function startupBudgetMs(container: any): number {
  const p = container.startupProbe
  return ((p.initialDelaySeconds ?? 0) + (p.periodSeconds ?? 10) * (p.failureThreshold ?? 3)) * 1000
}

/** `perPhoto` distinct 320×240 crops of each photo (distinct bytes, so the score cache answers none). */
async function distinctCrops(photos: string[], perPhoto: number): Promise<Buffer[]> {
  const out: Buffer[] = []
  for (const photo of photos) {
    const { width = 0, height = 0 } = await sharp(photo).metadata()
    const w = Math.floor(width * 0.8)
    const h = Math.floor(height * 0.8)
    for (let k = 0; k < perPhoto; k++) {
      const left = Math.floor(((width - w) * (k % 4)) / 3)
      const top = Math.floor(((height - h) * Math.floor(k / 4)) / Math.max(1, Math.ceil(perPhoto / 4) - 1))
      out.push(await sharp(photo).extract({ left, top, width: w, height: h }).resize(320, 240, { fit: 'fill' }).jpeg({ quality: 85 }).toBuffer())
    }
  }
  return out
}

const status = (text: string, field: string) => new RegExp(`\\n${field}:\\s+(.*)`).exec(text)?.[1]?.trim() ?? ''

if (why === undefined) {
  t.test('the runtime image as the Deployment runs it', async (t) => {
    const run = podRun(pod, api)
    const c = await start(t, IMAGE, run)
    const budget = startupBudgetMs(api)
    const readyMs = await untilReady(c, budget)
    t.ok(readyMs !== undefined, `ready (/readyz 200) ${readyMs === undefined ? 'never' : `after ${readyMs} ms`}, within the startup probe's ${budget / 1000} s`, { logs: readyMs === undefined ? await c.logs() : '' })
    if (readyMs === undefined) return

    const proc = await c.exec('cat', '/proc/1/status')
    t.match(status(proc.stdout, 'Uid'), new RegExp(`^${run.user.uid}\\s`), `PID 1 runs as uid ${run.user.uid} (runAsUser)`)
    t.match(status(proc.stdout, 'Gid'), new RegExp(`^${run.user.gid}\\s`), `and gid ${run.user.gid} (runAsGroup)`)
    t.ok(status(proc.stdout, 'Groups').split(/\s+/).includes(String(pod.securityContext.fsGroup)), `in the fsGroup ${pod.securityContext.fsGroup}`)
    t.equal(status(proc.stdout, 'NoNewPrivs'), '1', 'no_new_privs (allowPrivilegeEscalation: false)')
    t.match(status(proc.stdout, 'CapEff'), /^0+$/, 'no effective capabilities (drop ALL)')
    t.match(status(proc.stdout, 'CapBnd'), /^0+$/, 'and none to gain')
    t.match(status(proc.stdout, 'Seccomp'), /^2$/, 'a seccomp filter (RuntimeDefault)')
    t.match((await c.exec('cat', '/proc/1/cmdline')).stdout.replaceAll('\0', ' '), /^node dist\/main\.cjs/, 'PID 1 is node itself (it gets SIGTERM)')
    const ro = await c.exec('touch', '/app/written')
    t.not(ro.code, 0, 'the root filesystem refuses writes (readOnlyRootFilesystem)')
    t.match(ro.stderr, /read-only file system/i, 'as a read-only file system')
    t.equal((await c.exec('touch', '/tmp/written')).code, 0, '/tmp (the emptyDir) is writable')
    const maps = () => c.exec('cat', '/proc/1/maps').then((r) => r.stdout)
    t.match(await maps(), /\/libjemalloc\.so\.2\n/, 'jemalloc is mapped (LD_PRELOAD)')

    const score = await fetch(`${c.url}/score`, { method: 'POST', body: readFileSync(SAMPLE_JPEG), headers: { 'content-type': 'image/jpeg' } })
    const scored = (await score.json()) as any
    t.equal(score.status, 200, 'POST /score answers')
    t.type(scored.scores?.aesthetic?.mean, 'number', 'with an aesthetic score')
    t.type(scored.scores?.technical?.mean, 'number', 'and a technical one')

    const form = new FormData()
    for (const photo of [SAMPLE_JPEG, SECOND_JPEG]) form.append('image', new Blob([readFileSync(photo)]), basename(photo))
    const rank = await fetch(`${c.url}/rank`, { method: 'POST', body: form })
    const ranked = (await rank.json()) as any
    t.equal(rank.status, 200, 'POST /rank answers')
    t.equal(ranked.ranked?.length, 2, 'and ranks both uploads')

    const explain = await fetch(`${c.url}/explain?format=png&models=aesthetic`, { method: 'POST', body: readFileSync(SAMPLE_JPEG), headers: { 'content-type': 'image/jpeg' } })
    t.equal(explain.status, 200, 'POST /explain?format=png answers')
    t.equal(explain.headers.get('content-type'), 'image/png', 'a PNG')
    const png = await sharp(Buffer.from(await explain.arrayBuffer())).raw().toBuffer({ resolveWithObject: true })
    // The legend is the last 64 rows on white; its title line is the top 22 of them.
    let ink = 0
    for (let y = png.info.height - 64; y < png.info.height - 42; y++) {
      for (let x = 0; x < png.info.width; x++) {
        const i = (y * png.info.width + x) * png.info.channels
        if ((png.data[i] ?? 255) + (png.data[i + 1] ?? 255) + (png.data[i + 2] ?? 255) < 3 * 128) ink++
      }
    }
    t.ok(ink > 100, `the legend's title line has ink (${ink} dark pixels)`)
    // Without a usable font librsvg draws boxes in its place: the font file mapped into the
    // service is what tells real text from those.
    t.match(await maps(), /\/usr\/share\/fonts\/\S+\.ttf\n/, 'the legend was set in a font from /usr/share/fonts')
    t.equal((await c.exec('sh', '-c', 'ls "$XDG_CACHE_HOME/fontconfig" | grep -c cache')).code, 0, "fontconfig keeps its cache in XDG_CACHE_HOME, on /tmp")

    const health = JSON.parse((await engine(['image', 'inspect', '--format', '{{json .Config.Healthcheck}}', IMAGE])).stdout) as { Test?: string[] } | null
    t.equal(health?.Test?.[0], 'CMD', 'the image carries its HEALTHCHECK (docker image format)')
    const check = await c.exec(...(health?.Test?.slice(1) ?? ['false']))
    t.equal(check.code, 0, 'the HEALTHCHECK command passes in the running container', { stderr: check.stderr })

    // Pod deletion: the preStop hook, then SIGTERM; SIGKILL at terminationGracePeriodSeconds.
    const preStop = api.lifecycle.preStop.exec.command as string[]
    const hookStarted = Date.now()
    t.equal((await c.exec(...preStop)).code, 0, `the preStop hook (${preStop.join(' ')}) runs in the image`)
    const hookMs = Date.now() - hookStarted
    // In flight at SIGTERM: a POST /rank of 96 distinct small photos (every one scored by
    // both models: seconds of inference on the pod's 2 CPUs, however fast they are) and
    // four distinct 12-megapixel uploads to /score. SIGTERM goes out once each request not
    // yet answered is inside a handler (the in-flight gauge says so).
    const answeredAt = new Map<string, number>()
    const send = (name: string, path: string, body: RequestInit['body'], headers: Record<string, string> = {}) =>
      fetch(`${c.url}${path}`, { method: 'POST', body, headers }).then(
        async (r) => {
          const text = `${r.status} ${(await r.text()).slice(0, 200)}`
          answeredAt.set(name, Date.now())
          return text
        },
        (e: Error) => `failed ${e.message}`,
      )
    const rankForm = new FormData()
    for (const [i, part] of (await distinctCrops(samplePhotos().slice(0, 12), 8)).entries()) rankForm.append('image', new Blob([part]), `crop-${i}.jpg`)
    const big = await Promise.all(
      samplePhotos().slice(12, 16).map((p) => sharp(p).resize({ width: 4000, height: 3000, fit: 'fill' }).jpeg({ quality: 90 }).toBuffer()),
    )
    const requests = new Map<string, Promise<string>>([
      ['rank', send('rank', '/rank', rankForm)],
      ...big.map((body, i): [string, Promise<string>] => [`score-${i}`, send(`score-${i}`, '/score', body, { 'content-type': 'image/jpeg' })]),
    ])
    let inflight = 0
    for (let i = 0; i < 1200; i++) {
      const metrics = await fetch(`${c.url}/metrics`).then((r) => r.text(), () => '')
      inflight = Number(/^nima_inflight_requests (\d+)/m.exec(metrics)?.[1] ?? 0)
      if (inflight > 0 && inflight + answeredAt.size >= requests.size) break
      await sleep(25)
    }
    const killAt = Date.now()
    t.equal((await engine(['kill', '--signal', 'TERM', c.name])).code, 0, `SIGTERM sent with ${inflight} requests in flight`)
    const termAt = Date.now()
    const answers = Object.fromEntries(await Promise.all([...requests].map(async ([name, p]) => [name, await p] as const)))
    t.same(Object.values(answers).map((a) => a.slice(0, 3)), [...requests.keys()].map(() => '200'), `all ${requests.size} requests are answered 200`, { answers })
    const late = [...answeredAt].filter(([, at]) => at >= termAt).map(([name]) => name)
    t.ok(late.includes('rank'), `answered after SIGTERM was delivered: ${late.join(', ') || 'none'}`)
    const remainingMs = pod.terminationGracePeriodSeconds * 1000 - hookMs
    const waited = await engine(['wait', c.name], { timeoutMs: remainingMs + 10_000 })
    const exitMs = Date.now() - killAt
    t.equal(waited.stdout.trim().split('\n').at(-1), '0', 'the container exits 0')
    t.ok(exitMs < remainingMs, `within the grace period: ${exitMs} ms after SIGTERM, ${remainingMs} ms left after the preStop hook`)

    const logs = await c.logs()
    t.notMatch(logs, /fontconfig/i, 'no fontconfig complaint in the log')
    t.notMatch(logs, /EROFS|EACCES|read-only file system/i, 'no write was refused')
    t.match(logs, /"msg":"draining"/, 'it logged the drain')
  })

  t.test('NIMA_MODELS=none: models on a read-only volume; SIGHUP picks up a new version', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'nima-image-models-'))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    cpSync(await testModelsDir(), dir, { recursive: true, dereference: true })
    const open = (path: string) => {
      chmodSync(path, 0o755)
      for (const entry of readdirSync(path, { withFileTypes: true })) entry.isDirectory() ? open(join(path, entry.name)) : chmodSync(join(path, entry.name), 0o644)
    }
    open(dir)
    const run = podRun(pod, api)
    const c = await start(t, IMAGE_NONE, run, ['--volume', `${dir}:${run.env['MODELS_DIR']}:ro`])
    const readyMs = await untilReady(c, startupBudgetMs(api))
    t.ok(readyMs !== undefined, `ready with the volume's models (${readyMs} ms)`, { logs: readyMs === undefined ? await c.logs() : '' })
    if (readyMs === undefined) return
    t.equal((await engine(['run', '--rm', '--entrypoint', 'ls', IMAGE_NONE, '-A', '/app/models'])).stdout.trim(), '', 'the image itself holds no models')
    t.not((await c.exec('touch', `${run.env['MODELS_DIR']}/written`)).code, 0, 'the models volume is read-only')

    const served = async () => ((await (await fetch(`${c.url}/models`)).json()) as { models: { id: string; version: string }[] }).models
    const [before] = readdirSync(join(dir, 'aesthetic')) as [string]
    t.equal((await served()).find((m) => m.id === 'aesthetic')?.version, before, `serves ${before} from the volume`)

    // A new version appears on the volume (as a ConfigMap/volume update or a sync job would put it).
    const version = `${before}-next`
    cpSync(join(dir, 'aesthetic', before), join(dir, 'aesthetic', version), { recursive: true })
    const manifestPath = join(dir, 'aesthetic', version, 'manifest.json')
    const manifest = JSON.parse(readFileSync(manifestPath, 'utf8'))
    manifest.version = version
    manifest.provenance.createdAt = new Date(Date.now() + 1000).toISOString()
    writeFileSync(manifestPath, JSON.stringify(manifest, null, 2))
    open(dir)
    t.equal((await engine(['kill', '--signal', 'HUP', c.name])).code, 0, 'SIGHUP sent')
    let serving = ''
    for (let i = 0; i < 120 && serving !== version; i++) {
      await sleep(250)
      serving = (await served()).find((m) => m.id === 'aesthetic')?.version ?? ''
    }
    t.equal(serving, version, `SIGHUP: /models reports ${version}`)
    const score = (await (await fetch(`${c.url}/score`, { method: 'POST', body: readFileSync(SECOND_JPEG), headers: { 'content-type': 'image/jpeg' } })).json()) as any
    t.equal(score.models?.aesthetic?.version, version, 'and /score answers with it')
    t.notMatch(await c.logs(), /EROFS|EACCES|read-only file system/i, 'no write was refused')
  })

  t.test("the batch Job's command runs in the image; models pull says where to run it", async (t) => {
    const jobDoc = readYaml('k8s/batch/job.yaml')
    const job = jobDoc.spec.template.spec
    const shards = Number(jobDoc.spec.completions)
    const dir = mkdtempSync(join(tmpdir(), 'nima-image-batch-'))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    const data = join(dir, 'data')
    const cache = join(dir, 'cache')
    for (const d of [data, join(data, 'input', 'photos'), join(data, 'output'), cache]) mkdirSync(d, { recursive: true })
    // Records for 4 keys in shard 0 and 4 in the others (a key is hotel_id/image_id).
    const photos = samplePhotos().slice(0, 8)
    const records: { hotel_id: number; image_id: number; path: string }[] = []
    const want = { in: 4, out: 4 }
    for (let id = 0; records.length < 8; id++) {
      const inside = shardOf(`7/${id}`, shards) === 0
      if ((inside ? want.in : want.out) === 0) continue
      inside ? want.in-- : want.out--
      records.push({ hotel_id: 7, image_id: id, path: `/data/input/photos/${basename(photos[records.length]!)}` })
    }
    for (const p of photos) cpSync(p, join(data, 'input', 'photos', basename(p)))
    writeFileSync(join(data, 'input', 'images.jsonl'), records.map((r) => JSON.stringify(r)).join('\n') + '\n')
    // A claim and a disk emptyDir: writable by the pod's fsGroup in a cluster, by anyone here.
    for (const d of [dir, data, join(data, 'input'), join(data, 'input', 'photos'), join(data, 'output'), cache]) chmodSync(d, 0o1777)
    for (const p of readdirSync(join(data, 'input', 'photos'))) chmodSync(join(data, 'input', 'photos', p), 0o644)
    chmodSync(join(data, 'input', 'images.jsonl'), 0o644)
    const run = podRun(job, job.containers[0], {
      hostPaths: { data, cache },
      fieldRefs: { "metadata.annotations['batch.kubernetes.io/job-completion-index']": '0' },
    })
    const name = `nima-image-test-${process.pid}-${++containers}`
    t.teardown(() => remove(name))
    const batch = await engine(['run', '--name', name, '--network', 'none', ...run.flags, IMAGE, ...run.argv], { timeoutMs: 180_000 })
    t.equal(batch.code, 0, `${run.argv.slice(0, 4).join(' ')} … exits 0`, { stderr: batch.stderr.slice(-2000) })
    const lines = readFileSync(join(data, 'output', 'scores-0.jsonl'), 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l) as any)
    t.same(lines.map((l) => l.key).sort(), records.filter((r) => shardOf(`${r.hotel_id}/${r.image_id}`, shards) === 0).map((r) => `${r.hotel_id}/${r.image_id}`).sort(), `shard 0 of ${shards}: exactly its 4 records`)
    t.ok(lines.every((l) => typeof l.scores?.aesthetic?.mean === 'number'), 'each line has scores', { first: lines[0] })

    const cli = (...args: string[]) => engine(['run', '--rm', '--network', 'none', ...podRun(pod, api, { publish: false }).flags, '--entrypoint', 'node', IMAGE, 'dist/cli/main.js', ...args])
    const list = await cli('models', 'list')
    t.equal(list.code, 0, 'models list runs in the image')
    t.match(list.stdout, /aesthetic\s+synthetic-/, 'and lists the baked models')
    const pull = await cli('models', 'pull', '--dir', '/tmp/models')
    t.not(pull.code, 0, 'models pull refuses in the image (no h5wasm there)')
    t.match(pull.stderr, /h5wasm.*npx nima-serve models pull/s, 'saying where to run it instead', { stderr: pull.stderr })
  })

  t.test(`the app layers (image minus base) weigh at most ${APP_LAYERS_MAX_MB} MB`, async (t) => {
    const size = async (image: string) => Number((await engine(['image', 'inspect', '--format', '{{.Size}}', image])).stdout.trim())
    const base = readFileSync(repo('Dockerfile'), 'utf8').match(/^ARG NODE_IMAGE=(\S+)/m)?.[1] ?? ''
    const [whole, under] = [await size(IMAGE), await size(base)]
    t.ok(whole > 0 && under > 0, `${IMAGE} ${(whole / 1e6).toFixed(0)} MB, ${base} ${(under / 1e6).toFixed(0)} MB`)
    t.ok((whole - under) / 1e6 <= APP_LAYERS_MAX_MB, `app layers ${((whole - under) / 1e6).toFixed(0)} MB`)
    t.comment((await engine(['history', '--format', '{{.Size}}\t{{.CreatedBy}}', IMAGE])).stdout.split('\n').map((l) => l.slice(0, 110)).join('\n'))
  })
}
