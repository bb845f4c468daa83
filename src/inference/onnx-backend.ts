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
  return {
    provider,
    fallbacks,
    async run(input, shape, outputs) {
      const feeds = { [inputName]: new ort.Tensor('float32', input, shape as number[]) }
      const result = await session.run(feeds, outputs as string[])
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
