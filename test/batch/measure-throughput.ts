/**
 * Batch throughput: the CLI on local files vs the in-process pipeline limit.
 *
 *   npx tsx test/batch/measure-throughput.ts [--n 500] [--sweep-n 200] [--batch-sizes 8,16,32] [--repeat 1]
 *
 * 0. Decode + preprocessing alone (no models): what the CPU must sustain to feed a GPU.
 * 1. Limit sweep: for each batch size B, `--sweep-n` images (the sample photos repeated)
 *    already in memory go through Scorer.scoreBytes (decode + both models, micro-batched)
 *    with as many in flight as the CLI keeps (4B+2): no file, hash, cache or output work.
 *    The best B (by images per CPU-second, the figure least disturbed by other load) wins.
 * 2. At the best B, `--repeat` times, alternately (the machine is shared, so the two are
 *    interleaved to see the same noise): the limit again on `--n` images, then the real
 *    CLI as a child process (`batch --no-cache`) on a `--n`-line list of the same files.
 *    The CLI's rate is its summary's imagesPerSecond (processing, model loading excluded);
 *    its end-to-end rate (process start to exit) is printed too.
 * Models: the synthetic ones from test/helpers/models.ts (the real architecture, so
 * inference costs what it costs with idealo's weights).
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { availableParallelism, loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import type { BatchSummary } from '../../src/batch/pipeline.js'
import { mapPool } from '../../src/util/map-pool.js'
import { defaultInFlight } from '../../src/cli/batch-command.js'
import { testModelsDir } from '../helpers/models.js'
import { projectRoot, samplePhotos } from '../helpers/paths.js'
import { loadTestScorer } from './helpers.js'

if (process.env['TAP'] !== undefined) {
  // Picked up by `tap test/batch/`: a measurement, not a test.
  console.log('1..0 # SKIP measurement script: run it with npx tsx test/batch/measure-throughput.ts')
} else {
  await main()
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      n: { type: 'string', default: '500' },
      'sweep-n': { type: 'string', default: '200' },
      'batch-sizes': { type: 'string', default: '8,16,32' },
      repeat: { type: 'string', default: '1' },
    },
  })
  const n = Number(values.n)
  const sweepN = Number(values['sweep-n'])
  const batchSizes = values['batch-sizes'].split(',').map(Number)
  const repeat = Number(values.repeat)

  const photos = samplePhotos()
  if (photos.length === 0) throw new Error('no sample photos under ../shared/images')
  const list = (count: number) => Array.from({ length: count }, (_, i) => photos[i % photos.length]!)
  const modelsDir = await testModelsDir()

  interface Measured {
    /** Images per wall-clock second. */
    rate: number
    /** Images per CPU-second of the process (all threads): robust to other load on a shared machine. */
    perCpuSecond: number
  }

  async function limit(batchSize: number, count: number): Promise<Measured> {
    const scorer = await loadTestScorer({ BATCH_MAX_SIZE: batchSize, QUEUE_MAX: 1024 })
    try {
      const models = scorer.resolveModels()
      const bytes = list(count).map((p) => readFileSync(p))
      const started = performance.now()
      const cpu0 = process.cpuUsage()
      await mapPool(bytes, defaultInFlight(batchSize), (b) => scorer.scoreBytes(b, models))
      const cpu = process.cpuUsage(cpu0)
      return { rate: count / ((performance.now() - started) / 1000), perCpuSecond: count / ((cpu.user + cpu.system) / 1e6) }
    } finally {
      await scorer.dispose()
    }
  }

  /** Decode + preprocessing only (what CPU cores must do to feed an accelerator), 4 in flight. */
  async function decodeOnly(count: number): Promise<Measured> {
    const scorer = await loadTestScorer()
    try {
      const [model] = scorer.resolveModels()
      const bytes = list(count).map((p) => readFileSync(p))
      const started = performance.now()
      const cpu0 = process.cpuUsage()
      await mapPool(bytes, 4, async (b) => scorer.prepareBytes(b, [model!]))
      const cpu = process.cpuUsage(cpu0)
      return { rate: count / ((performance.now() - started) / 1000), perCpuSecond: count / ((cpu.user + cpu.system) / 1e6) }
    } finally {
      await scorer.dispose()
    }
  }

  async function cli(batchSize: number, count: number): Promise<Measured & { endToEnd: number; summary: BatchSummary }> {
    const dir = mkdtempSync(join(tmpdir(), 'nima-throughput-'))
    try {
      const input = join(dir, 'list.txt')
      writeFileSync(input, list(count).join('\n') + '\n')
      const started = performance.now()
      const child = spawn(
        process.execPath,
        ['--import', 'tsx', 'src/cli/batch-entry.ts', 'batch', '--input', input, '--output', join(dir, 'out.jsonl'), '--no-cache', '--batch-size', String(batchSize)],
        { cwd: projectRoot, env: { ...process.env, MODELS_DIR: modelsDir }, stdio: ['ignore', 'pipe', 'inherit'] },
      )
      let stdout = ''
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()))
      const code = await new Promise<number | null>((resolve) => child.on('close', resolve))
      if (code !== 0) throw new Error(`CLI exited with ${code}`)
      const summary = JSON.parse(stdout.trim().split('\n').at(-1)!) as BatchSummary
      if (summary.scored !== count) throw new Error(`CLI scored ${summary.scored} of ${count}`)
      return { rate: summary.imagesPerSecond, perCpuSecond: count / summary.cpuSeconds, endToEnd: count / ((performance.now() - started) / 1000), summary }
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  }

  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
  const f = (x: number) => x.toFixed(2)

  console.log(`cores: ${availableParallelism()}, load average: ${loadavg().map((x) => x.toFixed(2)).join(' ')}, photos: ${photos.length} distinct`)
  const decoding = await decodeOnly(n)
  console.log(`decode + preprocess only: ${f(decoding.rate)} img/s, ${f(decoding.perCpuSecond)} img per CPU-s (${n} images in memory)`)
  const sweep: Record<number, Measured> = {}
  for (const b of batchSizes) {
    sweep[b] = await limit(b, sweepN)
    console.log(`limit sweep: batch size ${b}: ${f(sweep[b].rate)} img/s, ${f(sweep[b].perCpuSecond)} img per CPU-s (${sweepN} images in memory)`)
  }
  // Best by CPU efficiency: wall rates swing with other load on a shared machine.
  const best = Number(Object.entries(sweep).sort((a, b) => b[1].perCpuSecond - a[1].perCpuSecond)[0]![0])
  console.log(`best batch size: ${best}`)

  const limits: Measured[] = []
  const clis: Measured[] = []
  const ends: number[] = []
  for (let r = 0; r < repeat; r++) {
    const l = await limit(best, n)
    limits.push(l)
    console.log(`round ${r + 1}: limit ${f(l.rate)} img/s, ${f(l.perCpuSecond)} img per CPU-s (${n} images in memory, batch size ${best}; load ${loadavg()[0]!.toFixed(1)})`)
    const c = await cli(best, n)
    clis.push(c)
    ends.push(c.endToEnd)
    console.log(
      `round ${r + 1}: CLI   ${f(c.rate)} img/s, ${f(c.perCpuSecond)} img per CPU-s, ${f(c.endToEnd)} img/s end to end ` +
        `(${n} files, --no-cache, batch size ${best}; load ${loadavg()[0]!.toFixed(1)})`,
    )
  }
  const cores = availableParallelism()
  const L = median(limits.map((m) => m.rate))
  const C = median(clis.map((m) => m.rate))
  const Lc = median(limits.map((m) => m.perCpuSecond))
  const Cc = median(clis.map((m) => m.perCpuSecond))
  const result = {
    cores,
    batchSize: best,
    images: n,
    rounds: repeat,
    limitImagesPerSecond: Number(f(L)),
    cliImagesPerSecond: Number(f(C)),
    cliEndToEndImagesPerSecond: Number(f(median(ends))),
    cliShareOfLimitWall: Number((C / L).toFixed(3)),
    limitImagesPerCpuSecond: Number(f(Lc)),
    cliImagesPerCpuSecond: Number(f(Cc)),
    cliShareOfLimitCpu: Number((Cc / Lc).toFixed(3)),
    decodeOnlyImagesPerCpuSecond: Number(f(decoding.perCpuSecond)),
    sweep,
  }
  console.log(`CLI / limit: ${(100 * result.cliShareOfLimitWall).toFixed(1)} % by wall-clock rate, ${(100 * result.cliShareOfLimitCpu).toFixed(1)} % by images per CPU-second (target ≥ 90 %)`)
  console.log(JSON.stringify(result))
}
