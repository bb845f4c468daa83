/**
 * Bench-only levers for tuning experiments on settings that src/ does not expose (yet).
 * (Intra-op spinning started here as BENCH_ORT_SPINNING, sessions on worker threads as
 * BENCH_ORT_WORKER; src/ now has ORT_ALLOW_SPINNING and INFERENCE_THREAD.) With sessions on
 * worker threads the ORT levers below apply only where a preload reaches the worker.
 * Loaded with `node --import ./bench/lib/levers.ts` into the service child, or imported
 * first in-process. Every lever is off unless its environment variable is set, so a
 * plain run measures exactly the shipped code.
 *
 *   BENCH_SHARP_CONCURRENCY=n  libvips threads per image (src/imaging/decode.ts pins 1)
 *   BENCH_ORT_ARENA=0          enableCpuMemArena: false (ORT's CPU arena keeps peak buffers)
 *   BENCH_ORT_MEMPATTERN=0     enableMemPattern: false (no pre-planned block per input shape)
 *
 * They patch library objects (sharp.concurrency, ort.InferenceSession.create) rather than
 * src/, so what they show is the effect a src/ change would have, never a shipped path.
 */
import sharp from 'sharp'
import * as ort from 'onnxruntime-node'

export interface LeverSettings {
  sharpConcurrency?: number
  ortArena?: boolean
  ortMemPattern?: boolean
}

export function leversFromEnv(env: NodeJS.ProcessEnv = process.env): LeverSettings {
  const out: LeverSettings = {}
  if (env.BENCH_SHARP_CONCURRENCY) out.sharpConcurrency = Number(env.BENCH_SHARP_CONCURRENCY)
  if (env.BENCH_ORT_ARENA) out.ortArena = env.BENCH_ORT_ARENA === '1'
  if (env.BENCH_ORT_MEMPATTERN) out.ortMemPattern = env.BENCH_ORT_MEMPATTERN === '1'
  return out
}

export function leversToEnv(levers: LeverSettings): Record<string, string> {
  const env: Record<string, string> = {}
  if (levers.sharpConcurrency !== undefined) env.BENCH_SHARP_CONCURRENCY = String(levers.sharpConcurrency)
  if (levers.ortArena !== undefined) env.BENCH_ORT_ARENA = levers.ortArena ? '1' : '0'
  if (levers.ortMemPattern !== undefined) env.BENCH_ORT_MEMPATTERN = levers.ortMemPattern ? '1' : '0'
  return env
}

const realConcurrency: typeof sharp.concurrency = sharp.concurrency.bind(sharp)
type Create = typeof ort.InferenceSession.create
const originalCreate: Create = ort.InferenceSession.create.bind(ort.InferenceSession)
let applied: LeverSettings = {}

/** Applies the levers once per process; later calls replace the settings. */
export function applyLevers(levers: LeverSettings): void {
  applied = { ...levers }
  if (levers.sharpConcurrency !== undefined) {
    realConcurrency(levers.sharpConcurrency)
    // decode.ts calls sharp.concurrency(1) when it is first imported: keep our value.
    sharp.concurrency = (() => realConcurrency()) as typeof sharp.concurrency
  }
  if (levers.ortArena !== undefined || levers.ortMemPattern !== undefined) {
    ort.InferenceSession.create = (async (pathOrBuffer: unknown, maybeOptions?: unknown) => {
      const opts = { ...((maybeOptions ?? {}) as ort.InferenceSession.SessionOptions) }
      if (applied.ortArena !== undefined) opts.enableCpuMemArena = applied.ortArena
      if (applied.ortMemPattern !== undefined) opts.enableMemPattern = applied.ortMemPattern
      return (originalCreate as (p: unknown, o: unknown) => Promise<ort.InferenceSession>)(pathOrBuffer, opts)
    }) as Create
  }
}


// As a preload (--import), configure from the environment straight away.
applyLevers(leversFromEnv())
