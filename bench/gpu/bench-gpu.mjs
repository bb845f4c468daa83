#!/usr/bin/env node
// Raw inference benchmark for a GPU machine that has no Node of its own (issue #5).
//
// Plain JavaScript on purpose: it runs from the tarball bench/gpu/pack.sh builds
// (bin/node + node_modules/onnxruntime-node + onnxruntime-common + the synthetic NIMA
// models), with no TypeScript toolchain. It tries the execution providers in order
// (default cuda, webgpu, cpu), says which failed and why, and on the first that loads
// both models measures each model alone and both in turn at batch sizes 1..256.
//
//   ./run.sh [--providers cuda,webgpu,cpu] [--batches 1,2,4,...,256] [--seconds 3]
//            [--all-providers] [--out results.json]
//
// Inputs are seeded pseudo-random tensors in MobileNet's [-1, 1] range: the cost of a
// convolution network does not depend on the pixel values, and no decoding happens here
// (this is the inference ceiling, not the service).
import { execFileSync } from 'node:child_process'
import { readdirSync, readFileSync, writeFileSync, existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import os from 'node:os'

const here = dirname(fileURLToPath(import.meta.url))
const { values: args } = parseArgs({
  options: {
    models: { type: 'string', default: join(here, 'models') },
    providers: { type: 'string', default: 'cuda,webgpu,cpu' },
    batches: { type: 'string', default: '1,2,4,8,16,32,64,128,256' },
    seconds: { type: 'string', default: '3' },
    'all-providers': { type: 'boolean', default: false },
    'node-modules': { type: 'string', default: join(here, 'node_modules') },
    out: { type: 'string' },
  },
})

const require = createRequire(join(resolve(args['node-modules']), 'noop.js'))
const ort = require('onnxruntime-node')

const log = (s = '') => process.stdout.write(`${s}\n`)
const round = (x, d = 1) => Math.round(x * 10 ** d) / 10 ** d

function gpuInfo() {
  try {
    return execFileSync('nvidia-smi', ['--query-gpu=name,memory.total,driver_version', '--format=csv,noheader'], { encoding: 'utf8' }).trim()
  } catch (err) {
    return `nvidia-smi unavailable (${err.code ?? err.message})`
  }
}

/** <models>/<id>/<version>/{manifest.json, model.onnx}, as the service lays them out. */
function findModels(dir) {
  const out = []
  for (const id of readdirSync(dir).sort()) {
    const idDir = join(dir, id)
    for (const version of readdirSync(idDir).sort()) {
      const manifestPath = join(idDir, version, 'manifest.json')
      if (!existsSync(manifestPath)) continue
      const m = JSON.parse(readFileSync(manifestPath, 'utf8'))
      out.push({ id, version, precision: m.precision ?? 'float32', path: join(idDir, version, m.file), input: m.input, output: m.output })
    }
  }
  if (out.length === 0) throw new Error(`no models under ${dir}`)
  return out
}

function providerOption(name) {
  if (name === 'cuda') return { name: 'cuda', deviceId: 0 }
  if (name === 'webgpu') return { name: 'webgpu' }
  return name
}

async function openAll(models, provider) {
  const sessions = []
  try {
    for (const m of models) {
      const t0 = performance.now()
      const session = await ort.InferenceSession.create(m.path, { executionProviders: [providerOption(provider)], graphOptimizationLevel: 'all' })
      sessions.push({ model: m, session, loadMs: performance.now() - t0 })
    }
    return sessions
  } catch (err) {
    await Promise.all(sessions.map((s) => s.session.release()))
    throw err
  }
}

/** xorshift32 in [-1, 1): deterministic inputs. */
function fill(arr, seed) {
  let x = seed >>> 0 || 1
  for (let i = 0; i < arr.length; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    arr[i] = ((x >>> 0) / 2 ** 31) - 1
  }
  return arr
}

async function timeRuns(runOnce, seconds) {
  await runOnce() // first run at a shape pays allocation and kernel selection
  await runOnce()
  const runs = []
  const started = performance.now()
  while (performance.now() - started < seconds * 1000 || runs.length < 3) {
    const t0 = performance.now()
    await runOnce()
    runs.push(performance.now() - t0)
  }
  runs.sort((a, b) => a - b)
  return { elapsedMs: performance.now() - started, runs: runs.length, medianMs: runs[Math.floor(runs.length / 2)] }
}

async function benchProvider(provider, sessions, batches, seconds) {
  const rows = []
  for (const b of batches) {
    const { width, height } = sessions[0].model.input
    let input
    try {
      input = fill(new Float32Array(b * height * width * 3), b)
    } catch (err) {
      log(`  batch ${b}: cannot allocate input (${err.message})`)
      break
    }
    const tensor = new ort.Tensor('float32', input, [b, height, width, 3])
    const row = { provider, precision: sessions[0].model.precision, batch: b }
    try {
      for (const s of sessions) {
        const fetches = [s.model.output.scores.name]
        const r = await timeRuns(() => s.session.run({ [s.model.input.name]: tensor }, fetches), seconds)
        row[s.model.id] = { imagesPerSec: round((r.runs * b * 1000) / r.elapsedMs), medianMsPerRun: round(r.medianMs, 2) }
      }
      // Both models on the same batch, one after the other (what one request needs).
      const both = await timeRuns(async () => {
        for (const s of sessions) await s.session.run({ [s.model.input.name]: tensor }, [s.model.output.scores.name])
      }, seconds)
      row.bothSerial = { imagesPerSec: round((both.runs * b * 1000) / both.elapsedMs), medianMsPerRun: round(both.medianMs, 2) }
      // Both models launched together (the service's Promise.all).
      const conc = await timeRuns(() => Promise.all(sessions.map((s) => s.session.run({ [s.model.input.name]: tensor }, [s.model.output.scores.name]))), seconds)
      row.bothConcurrent = { imagesPerSec: round((conc.runs * b * 1000) / conc.elapsedMs), medianMsPerRun: round(conc.medianMs, 2) }
    } catch (err) {
      row.error = String(err.message).split('\n')[0]
      rows.push(row)
      log(`  batch ${b}: ${row.error}`)
      break
    }
    rows.push(row)
    const per = sessions.map((s) => `${s.model.id} ${row[s.model.id].imagesPerSec}`).join(', ')
    log(`  batch ${String(b).padStart(3)}: ${per}, both serial ${row.bothSerial.imagesPerSec}, both concurrent ${row.bothConcurrent.imagesPerSec} images/s`)
  }
  return rows
}

async function main() {
  const batches = args.batches.split(',').map(Number)
  const seconds = Number(args.seconds)
  const models = findModels(resolve(args.models))
  const info = {
    node: `${process.version} (${process.execPath})`,
    onnxruntime: ort.env.versions,
    platform: `${os.platform()} ${os.arch()} ${os.release()}`,
    cpus: `${os.cpus().length} × ${os.cpus()[0]?.model}`,
    memoryGiB: Math.round(os.totalmem() / 2 ** 30),
    gpu: gpuInfo(),
    ldLibraryPath: process.env.LD_LIBRARY_PATH ?? '',
    models: models.map((m) => `${m.id}/${m.version} (${m.precision})`),
  }
  // One measurement per precision: float32 always, float16 when `models fp16` made variants.
  const groups = new Map()
  for (const m of models) groups.set(m.precision, [...(groups.get(m.precision) ?? []), m])
  log(`# NIMA raw inference on ${info.gpu}`)
  log(`node ${info.node}, onnxruntime-node ${info.onnxruntime?.node ?? '?'}, ${info.platform}, ${info.cpus}, ${info.memoryGiB} GiB`)
  log(`models: ${info.models.join(', ')}; batches ${batches.join(',')}; ${seconds} s per measurement`)

  const attempts = []
  const results = []
  for (const provider of args.providers.split(',')) {
    let ok = false
    for (const [precision, group] of groups) {
      let sessions
      try {
        sessions = await openAll(group, provider)
      } catch (err) {
        const error = String(err.message ?? err).split('\n')[0]
        attempts.push({ provider, precision, ok: false, error })
        log(`\nprovider ${provider} (${precision}): FAILED — ${error}`)
        continue
      }
      ok = true
      attempts.push({ provider, precision, ok: true, loadMs: sessions.map((s) => round(s.loadMs)) })
      log(`\nprovider ${provider} (${precision}): OK (session load ${sessions.map((s) => `${s.model.id} ${round(s.loadMs)} ms`).join(', ')})`)
      try {
        results.push(...(await benchProvider(provider, sessions, batches, seconds)))
      } finally {
        await Promise.all(sessions.map((s) => s.session.release()))
      }
    }
    if (ok && !args['all-providers']) break
  }
  const worked = [...new Set(attempts.filter((a) => a.ok).map((a) => a.provider))]
  log(`\nproviders that worked: ${worked.join(', ') || 'none'}; failed: ${attempts.filter((a) => !a.ok).map((a) => `${a.provider} (${a.precision})`).join(', ') || 'none'}`)
  const out = args.out ?? join(here, `results-gpu-${new Date().toISOString().replace(/[:.]/g, '-')}.json`)
  writeFileSync(out, `${JSON.stringify({ kind: 'nima-serve-bench-gpu', info, attempts, results }, null, 2)}\n`)
  log(`wrote ${out}`)
  if (worked.length === 0) process.exitCode = 1
}

main().catch((err) => {
  process.stderr.write(`bench-gpu failed: ${err.stack ?? err}\n`)
  process.exitCode = 1
})
