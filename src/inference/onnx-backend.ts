import * as ort from 'onnxruntime-node'
import type { ExecutionProviderName } from '../config/load.js'

/**
 * The one module that talks to ONNX Runtime: sessions, execution providers, run and
 * dispose. Everything above it sees Float32Arrays and provider names.
 */
export interface SessionOptions {
  providers: readonly ExecutionProviderName[]
  intraOpThreads: number
  interOpThreads: number
  /** Spin-wait between operators (ORT's default). Off by default here: see ORT_ALLOW_SPINNING. */
  allowSpinning?: boolean
  /** 'worker': the session lives on a worker thread of its own (threaded-session.ts). Default 'main'. */
  thread?: 'main' | 'worker'
}

export interface ProviderFailure {
  provider: ExecutionProviderName
  error: string
}

export interface ModelSession {
  /** The execution provider that actually loaded. */
  readonly provider: ExecutionProviderName
  /** Providers tried before it, with why they failed. */
  readonly fallbacks: readonly ProviderFailure[]
  /** Linux thread id of the session's own thread (worker sessions on Linux): for per-thread CPU accounting. */
  readonly threadId?: number
  /** Runs a batch of NHWC images; returns each requested output flattened. */
  run(input: Float32Array, shape: readonly number[], outputs: readonly string[]): Promise<Record<string, Float32Array>>
  dispose(): Promise<void>
}

/** `model` is a file path, or the encoded model itself (the model tool checks variants before installing them). */
export async function openSession(model: string | Uint8Array, inputName: string, options: SessionOptions): Promise<ModelSession> {
  const fallbacks: ProviderFailure[] = []
  for (const provider of options.providers) {
    try {
      const sessionOptions: ort.InferenceSession.SessionOptions = {
        executionProviders: [provider],
        intraOpNumThreads: options.intraOpThreads,
        interOpNumThreads: options.interOpThreads,
        graphOptimizationLevel: 'all',
        executionMode: options.interOpThreads > 1 ? 'parallel' : 'sequential',
        // Spinning threads burn the cores that libvips and the other model's session need.
        extra: spinning(options.allowSpinning ?? false),
      }
      const session = typeof model === 'string' ? await ort.InferenceSession.create(model, sessionOptions) : await ort.InferenceSession.create(model, sessionOptions)
      return wrap(session, inputName, provider, fallbacks)
    } catch (err) {
      fallbacks.push({ provider, error: err instanceof Error ? err.message.split('\n')[0]! : String(err) })
    }
  }
  const tried = fallbacks.map((f) => `${f.provider}: ${f.error}`).join('; ')
  const what = typeof model === 'string' ? model : `the ${model.byteLength}-byte model`
  throw new Error(`no execution provider could load ${what} (${tried})`)
}

function spinning(allow: boolean) {
  const v = allow ? '1' : '0'
  return { session: { intra_op: { allow_spinning: v }, inter_op: { allow_spinning: v } } }
}

function wrap(
  session: ort.InferenceSession,
  inputName: string,
  provider: ExecutionProviderName,
  fallbacks: ProviderFailure[],
): ModelSession {
  // onnxruntime-node refuses a tensor over shared memory ("Invalid argument"), which is
  // where batches arrive from (nima-model.ts). They are copied into a private buffer,
  // grown as needed and reused, so a batch allocates nothing. The binding reads its input
  // only when the run starts, a tick after session.run returns, so the buffer stays
  // taken until the run ends, and a run that overlaps it gets a buffer of its own.
  let scratch = new Float32Array(0)
  let scratchTaken = false
  const own = (input: Float32Array): { data: Float32Array; release: () => void } => {
    if (input.buffer instanceof ArrayBuffer) return { data: input, release: () => {} }
    if (scratchTaken) return { data: Float32Array.from(input), release: () => {} }
    if (scratch.length < input.length) scratch = new Float32Array(input.length)
    const data = scratch.length === input.length ? scratch : scratch.subarray(0, input.length)
    data.set(input)
    scratchTaken = true
    return { data, release: () => (scratchTaken = false) }
  }
  return {
    provider,
    fallbacks,
    async run(input, shape, outputs) {
      const { data, release } = own(input)
      const feeds = { [inputName]: new ort.Tensor('float32', data, shape as number[]) }
      const result = await session.run(feeds, outputs as string[]).finally(release)
      const out: Record<string, Float32Array> = {}
      for (const name of outputs) {
        const t = result[name]
        if (!t || !(t.data instanceof Float32Array)) throw new Error(`model output ${name} missing or not float32`)
        out[name] = t.data
      }
      return out
    },
    dispose: () => session.release(),
  }
}
