/**
 * Image bytes → tensor → model outputs, for one model manifest: the one place that knows
 * how a manifest's input spec becomes a tensor and how its outputs are named. The service
 * (NimaModel, behind its micro-batcher), the float16 precision check, fine-tuning's
 * feature extraction and verification, and the benchmark all go through it.
 */
import { readFile } from 'node:fs/promises'
import type { ImageAdmission } from '../imaging/admission.js'
import type { Preprocess } from '../imaging/preprocess.js'
import type { DecodedSummary } from '../imaging/sampled-decode.js'
import { normalizationTable, tensorSize, writeTensor, type TensorSpec } from '../imaging/tensor.js'
import { openSession, type ModelSession, type ProviderFailure, type SessionOptions } from '../inference/onnx-backend.js'
import { openThreadedSession } from '../inference/threaded-session.js'
import { decodeModel, readHead, type Head } from './head.js'
import { sha256Hex } from './integrity.js'
import type { ModelManifest } from './manifest.js'

/** The model outputs by role; the manifest maps each to its graph name. */
export type OutputRole = 'scores' | 'features' | 'featureMap'

/**
 * The preprocessing a manifest asks for, as the tensor writer's spec. Only the original
 * NIMA rule is implemented (NHWC, nearest-neighbour, fill); anything else is refused
 * rather than silently preprocessed the wrong way.
 */
export function tensorSpecOf(manifest: ModelManifest): TensorSpec {
  const { layout, resize, fit, width, height, normalization } = manifest.input
  if (layout !== 'NHWC' || resize !== 'nearest' || fit !== 'fill') {
    throw new RangeError(`model ${manifest.id}/${manifest.version}: unsupported input spec ${layout}/${resize}/${fit} (supported: NHWC/nearest/fill)`)
  }
  return { width, height, lut: normalizationTable(normalization.scale, normalization.offset) }
}

/** Equal for manifests that want identical input tensors, so one tensor serves them all. */
export function inputKeyOf(manifest: ModelManifest): string {
  const { width, height, resize, fit, normalization } = manifest.input
  return JSON.stringify([width, height, resize, fit, normalization.scale, normalization.offset])
}

/**
 * Decodes untrusted bytes through the image admission (src/imaging/admission.ts: header
 * limits, memory budget, lanes, decode processes, as for the service) and writes the
 * model tensor into `out` at image slot `slot` (a batch buffer), preprocessed as `preprocess`
 * says (src/imaging/preprocess.ts). Returns the image's summary.
 */
export async function decodeIntoTensor(admission: ImageAdmission, bytes: Buffer, spec: TensorSpec, out: Float32Array, slot = 0, preprocess: Preprocess = 'exact'): Promise<DecodedSummary> {
  const { image, samples } = await admission.pixels(bytes, { sizes: [[spec.width, spec.height]], preprocess })
  writeTensor(samples[0]!, spec, out, slot * tensorSize(spec))
  return image
}

/** What a loaded model reports of itself: in responses, metrics and logs. */
export interface ModelInfo {
  id: string
  version: string
  task: ModelManifest['task']
  synthetic: boolean
  provider: string
}

/** One model file opened for its manifest. */
export class ManifestModel {
  readonly manifest: ModelManifest
  readonly spec: TensorSpec
  readonly inputKey: string
  readonly info: ModelInfo
  readonly #session: ModelSession
  readonly #source: string | Uint8Array
  #head: Promise<Head> | undefined

  private constructor(manifest: ModelManifest, session: ModelSession, source: string | Uint8Array) {
    this.manifest = manifest
    this.spec = tensorSpecOf(manifest)
    this.inputKey = inputKeyOf(manifest)
    this.#session = session
    this.#source = source
    this.info = { id: manifest.id, version: manifest.version, task: manifest.task, synthetic: manifest.synthetic, provider: session.provider }
  }

  /** `model`: the ONNX file's path or bytes. */
  static async open(model: string | Uint8Array, manifest: ModelManifest, options: SessionOptions): Promise<ManifestModel> {
    tensorSpecOf(manifest)
    const open = options.thread === 'worker' ? openThreadedSession : openSession
    return new ManifestModel(manifest, await open(model, manifest.input.name, options), model)
  }

  /**
   * The Dense head's weights, read from the model file itself the first time they are
   * asked for (/explain), so they are the numbers the graph computes with, never a copy
   * that could drift. A file whose sha256 no longer matches the manifest (replaced on
   * disk since the session opened it) is refused rather than paired with this session.
   */
  head(): Promise<Head> {
    this.#head ??= (async () => {
      const bytes = typeof this.#source === 'string' ? await readFile(this.#source) : this.#source
      if (typeof this.#source === 'string' && sha256Hex(bytes) !== this.manifest.sha256) {
        throw new Error(`model ${this.manifest.id}/${this.manifest.version}: ${this.#source} changed on disk since it was loaded (sha256 differs from the manifest); reload the models`)
      }
      return readHead(decodeModel(bytes), { float16: true })
    })()
    // A failed read is not cached: the next request tries again.
    this.#head.catch(() => (this.#head = undefined))
    return this.#head
  }

  /** Values per image of one tensor. */
  get tensorSize(): number {
    return tensorSize(this.spec)
  }

  get provider(): string {
    return this.#session.provider
  }

  get fallbacks(): readonly ProviderFailure[] {
    return this.#session.fallbacks
  }

  /** The session thread's Linux thread id, when it runs on a worker thread of its own. */
  get threadId(): number | undefined {
    return this.#session.threadId
  }

  /** A zeroed buffer for `n` images. */
  batchBuffer(n: number): Float32Array {
    return new Float32Array(n * this.tensorSize)
  }

  /**
   * Runs `n` images (`input` holds their tensors back to back) and returns the requested
   * outputs, each `n` rows long (10 bins for scores, the pooled size for features,
   * channels × height × width for the feature map).
   */
  async run(input: Float32Array, n: number, roles: readonly OutputRole[] = ['scores']): Promise<Record<OutputRole, Float32Array>> {
    const names = roles.map((role) => this.outputName(role))
    const out = await this.#session.run(input, [n, this.spec.height, this.spec.width, 3], names)
    const byRole = {} as Record<OutputRole, Float32Array>
    roles.forEach((role, i) => (byRole[role] = out[names[i]!]!))
    return byRole
  }

  /** The graph name of an output; features and the feature map are optional in a manifest. */
  outputName(role: OutputRole): string {
    if (role === 'scores') return this.manifest.output.scores.name
    const f = this.manifest.output[role]
    if (!f) throw new RangeError(`model ${this.manifest.id}/${this.manifest.version} declares no ${role} output`)
    return f.name
  }

  /** True when the manifest declares `role` (scores always). */
  hasOutput(role: OutputRole): boolean {
    return role === 'scores' || this.manifest.output[role] !== undefined
  }

  dispose(): Promise<void> {
    return this.#session.dispose()
  }
}
