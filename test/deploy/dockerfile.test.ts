import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'
import t from 'tap'
import { loadConfig } from '../../src/config/load.js'
import { ConfigSchema } from '../../src/config/schema.js'
import { projectRoot } from '../helpers/paths.js'
import { dockerfileStages, dockerignore, stageCopies, stageEnv, type Stage } from './dockerfile.js'
import { repo } from './helpers.js'

// The Dockerfile cannot be built here (no Docker engine), so its structure is checked: the
// stages and targets, where each file comes from, what the build context lets through,
// and the runtime contract (non-root, read-only friendly, health check, config).

const stages = dockerfileStages()
const stage = (name: string): Stage => {
  const s = stages.find((x) => x.name === name)
  if (!s) throw new Error(`no stage ${name}`)
  return s
}
const args = (s: Stage, keyword: string): string[] => s.instructions.filter((i) => i.keyword === keyword).map((i) => i.args)

t.test('stages: a CPU runtime (default target), a GPU target, models by build arg', async (t) => {
  const names = stages.map((s) => s.name)
  for (const wanted of ['deps', 'build', 'models', 'models-fp16', 'prod-deps', 'prod-deps-cuda', 'gpu', 'runtime']) t.ok(names.includes(wanted), `stage ${wanted}`)
  t.equal(names.at(-1), 'runtime', 'runtime is the last stage, so a plain docker build makes the CPU image')
  t.equal(stage('runtime').image, 'node:24-bookworm-slim', 'CPU image on node:24-bookworm-slim (a maintained LTS line)')
  t.equal(stage('base').image, 'node:24-bookworm-slim', 'build stages and the GPU image\'s node binary on the same Node')
  const engines = (JSON.parse(readFileSync(repo('package.json'), 'utf8')) as { engines: { node: string } }).engines.node
  t.match(engines, /\^24\./, `package.json engines (${engines}) covers the images' Node 24`)
  t.match(stage('gpu').image, /^nvidia\/cuda:12\.[\d.]+-cudnn-runtime-ubuntu22\.04$/, 'GPU image on a CUDA 12 cuDNN runtime base')
  const models = stage('models')
  t.ok(args(models, 'ARG').includes('NIMA_MODELS=ensure'), 'ARG NIMA_MODELS defaults to ensure (synthetic)')
  const run = args(models, 'RUN').join(' ')
  t.match(run, /ensure\|pull\) node dist\/cli\/main\.js models "\$NIMA_MODELS" --dir \/models/, 'ensure and pull go through the model tool')
  t.match(run, /none\) mkdir -p \/models/, 'none leaves the models to a volume')
  t.match(run, /exit 2/, 'any other value stops the build')
  const fp16 = stage('models-fp16')
  t.equal(fp16.image, 'models', 'models-fp16 adds to the models stage')
  t.match(args(fp16, 'RUN').join(' '), /node dist\/cli\/main\.js models fp16 --dir \/models/, 'float16 variants through the model tool')
})

t.test('COPY: earlier stages only; context files exist and pass .dockerignore', async (t) => {
  const ignored = dockerignore()
  const walk = (path: string): string[] =>
    statSync(path).isDirectory() ? readdirSync(path).flatMap((f) => walk(join(path, f))) : [relative(projectRoot, path)]
  stages.forEach((s, index) => {
    for (const copy of stageCopies(s)) {
      if (copy.from !== undefined) {
        const from = stages.findIndex((x) => x.name === copy.from)
        t.ok(from >= 0 && from < index, `${s.name}: COPY --from=${copy.from} is an earlier stage`)
        continue
      }
      for (const source of copy.sources) {
        t.ok(existsSync(repo(source)), `${s.name}: COPY ${source} exists`)
        if (!existsSync(repo(source))) continue
        const excluded = walk(repo(source)).filter((f) => ignored(f))
        t.same(excluded, [], `${s.name}: COPY ${source} is let through by .dockerignore`)
      }
    }
  })
  for (const kept of ['node_modules/typescript/package.json', 'dist/main.js', 'models/README.md', '.git/HEAD', 'test/smoke.test.ts', '.cache/x', 'Dockerfile']) {
    t.ok(ignored(kept), `.dockerignore keeps ${kept} out of the context`)
  }
})

t.test('dependencies: no lifecycle scripts on npm ci; the GPU image opts in to the CUDA EP', async (t) => {
  t.match(args(stage('deps'), 'RUN').join(' '), /npm ci --ignore-scripts/, 'deps: npm ci without scripts (prepare needs src/)')
  t.match(args(stage('build'), 'RUN').join(' '), /npm run build/, 'build: tsc')
  t.equal(stage('prod-deps').image, 'deps', 'prod-deps starts from every dependency…')
  t.match(args(stage('prod-deps'), 'RUN').join(' '), /^npm prune --omit=dev --ignore-scripts/, '…and prunes the dev ones: production dependencies only')
  t.match(args(stage('deps'), 'RUN').join(' '), /for d in node_modules\/onnxruntime-node\/bin\/napi-v6\/\*\/\*; do .*rm -rf/, "deps: other platforms' onnxruntime binaries are dropped (before prod-deps and the GPU's build on it)")
  const cuda = stage('prod-deps-cuda')
  t.equal(cuda.image, 'prod-deps', 'the GPU dependencies add to the CPU ones, so the CPU build exercises everything but the CUDA download')
  t.equal(stageEnv(cuda)['ONNXRUNTIME_NODE_INSTALL'], 'cuda12', 'GPU: ONNXRUNTIME_NODE_INSTALL=cuda12')
  t.match(args(cuda, 'RUN').join(' '), /node node_modules\/onnxruntime-node\/script\/install --onnxruntime-node-install=cuda12 .*libonnxruntime_providers_cuda\.so/, 'GPU: runs onnxruntime-node install and checks the CUDA EP arrived')
  const nodeModules = (s: Stage) => stageCopies(s).find((c) => c.sources.includes('/app/node_modules'))?.from
  t.equal(nodeModules(stage('runtime')), 'prod-deps', 'runtime takes the CPU production dependencies')
  t.equal(nodeModules(stage('gpu')), 'prod-deps-cuda', 'gpu takes the CUDA-enabled production dependencies')
  t.match(JSON.parse(readFileSync(repo('package.json'), 'utf8')) as object, { scripts: { build: /tsc -p tsconfig\.build\.json/ } }, 'npm run build is the tsc build the stage expects')
})

t.test('gpu and runtime: the same system packages and the same shared settings', async (t) => {
  const packages = (s: Stage) => /apt-get install -y --no-install-recommends ([^&]+)/.exec(args(s, 'RUN').join(' '))?.[1]?.trim()
  t.equal(packages(stage('gpu')), packages(stage('runtime')), 'apt packages')
  const runtime = stageEnv(stage('runtime'))
  const gpu = stageEnv(stage('gpu'))
  for (const key of Object.keys(runtime).filter((k) => k !== 'EXECUTION_PROVIDERS')) t.equal(gpu[key], runtime[key], `ENV ${key}`)
  for (const keyword of ['USER', 'EXPOSE', 'VOLUME', 'HEALTHCHECK', 'STOPSIGNAL', 'CMD']) t.same(args(stage('gpu'), keyword), args(stage('runtime'), keyword), keyword)
})

for (const name of ['runtime', 'gpu']) {
  t.test(`${name}: non-root, read-only friendly, health check, valid config`, async (t) => {
    const s = stage(name)
    const env = stageEnv(s)
    const user = args(s, 'USER').at(-1) ?? ''
    t.match(user, /^\d+(:\d+)?$/, 'USER is numeric (Kubernetes can verify runAsNonRoot)')
    t.not(user.split(':')[0], '0', 'USER is not root')
    t.ok(args(s, 'VOLUME').some((v) => v.includes('/tmp')), '/tmp is a volume (the only writable path)')
    t.equal(env['TMPDIR'], '/tmp')
    t.match(args(s, 'HEALTHCHECK').join(' '), /CMD .*\/healthz/, 'HEALTHCHECK calls /healthz')
    t.ok(args(s, 'EXPOSE').includes(env['PORT'] ?? ''), `EXPOSE ${env['PORT']}`)
    t.same(args(s, 'CMD').at(-1), '["node", "dist/main.cjs"]', 'starts node dist/main.cjs directly (Node gets SIGTERM; libuv\'s pool sized before it starts)')
    t.ok(existsSync(repo('src/main.cts')), 'dist/main.cjs is built from src/main.cts')
    t.match(args(s, 'RUN').join(' '), /apt-get install -y --no-install-recommends libjemalloc2 fonts-dejavu-core fontconfig-config /, 'installs jemalloc, and a font and fontconfig\'s configuration for the /explain legend')
    t.equal(env['XDG_CACHE_HOME'], '/tmp/.cache', 'fontconfig caches under /tmp, the one writable place')
    t.equal(env['LD_PRELOAD'], 'libjemalloc.so.2', 'preloads jemalloc by soname (any architecture\'s library folder)')
    t.notOk('MALLOC_ARENA_MAX' in env, 'no glibc malloc tuning: glibc\'s malloc is not the allocator')
    t.equal(env['MODELS_DIR'], '/app/models', 'MODELS_DIR is where the models are copied')
    const modelsStage = name === 'gpu' ? 'models-fp16' : 'models'
    t.ok(stageCopies(s).some((c) => c.from === modelsStage && c.dest === './models'), `models come from the ${modelsStage} stage`)
    t.equal(env['EXECUTION_PROVIDERS'], name === 'gpu' ? 'cuda,cpu' : 'cpu')
    const known = Object.keys(ConfigSchema.properties)
    const config = Object.fromEntries(Object.entries(env).filter(([k]) => known.includes(k)))
    t.doesNotThrow(() => loadConfig(config), 'the image ENV passes the service config validation')
  })
}
