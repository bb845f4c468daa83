/**
 * The conversion proof: the converted ONNX model, run by ONNX Runtime through the service's
 * own ManifestModel, must give the probabilities of the independent float64 Keras forward
 * pass (reference-forward.ts) on the same input tensors. `models import` runs it before it
 * installs anything; test/models/conversion-proof.test.ts holds the converter to the same
 * tolerances.
 */
import type { PaddingMode } from '../models/architecture.js'
import type { ModelManifest } from '../models/manifest.js'
import { loadReferenceWeights, meanScore, referenceForward, type KerasMobileNet } from './reference-forward.js'
import { ManifestModel } from '../models/model-pipeline.js'

/** Largest |Δp| of one bin; float32 ONNX vs float64 reference measures about 1e-7 (docs/models.md). */
export const PROOF_TOLERANCE_P = 1e-5
/** Largest |Δ mean score| on the 1..10 scale. */
export const PROOF_TOLERANCE_MEAN = 1e-4

export interface ProofGap {
  maxAbsDeltaP: number
  maxAbsDeltaMean: number
  /** Index of the input with the largest |Δmean|. */
  worst: number
}

export interface ConversionProof extends ProofGap {
  /** ONNX Runtime's probabilities, one row of 10 per input. */
  onnx: Float32Array[]
  reference: Float64Array[]
  passed: boolean
  seconds: number
  provider: string
}

/** The reference restates the padding rule under its own names, on purpose. */
export function referenceEra(padding: PaddingMode): KerasMobileNet {
  return padding === 'symmetric' ? 'keras-2.1.6' : 'keras-2.2'
}

/** How far two sets of per-input probabilities are apart. */
export function proofGap(onnx: readonly ArrayLike<number>[], reference: readonly ArrayLike<number>[]): ProofGap {
  if (onnx.length !== reference.length || onnx.length === 0) throw new RangeError(`proof: ${onnx.length} ONNX rows for ${reference.length} reference rows`)
  let maxAbsDeltaP = 0
  let maxAbsDeltaMean = -1
  let worst = 0
  onnx.forEach((p, i) => {
    const ref = reference[i]!
    if (p.length !== ref.length) throw new RangeError(`proof: input ${i} has ${p.length} ONNX bins and ${ref.length} reference bins`)
    for (let b = 0; b < p.length; b++) maxAbsDeltaP = Math.max(maxAbsDeltaP, Math.abs(p[b]! - ref[b]!))
    const delta = Math.abs(meanScore(p) - meanScore(ref))
    if (delta > maxAbsDeltaMean) [maxAbsDeltaMean, worst] = [delta, i]
  })
  return { maxAbsDeltaP, maxAbsDeltaMean, worst }
}

/**
 * Runs `onnx` (opened with `manifest`, on the CPU provider) and the float64 reference of the
 * Keras file at `hdf5Path` with `padding` on every tensor, and compares them. It reports;
 * the caller decides what a failure means.
 */
export async function runConversionProof(
  hdf5Path: string,
  padding: PaddingMode,
  onnx: Uint8Array,
  manifest: ModelManifest,
  tensors: readonly Float32Array[],
): Promise<ConversionProof> {
  const started = performance.now()
  const weights = await loadReferenceWeights(hdf5Path)
  const reference = tensors.map((tensor) => referenceForward(weights, tensor, referenceEra(padding)))
  const model = await ManifestModel.open(onnx, manifest, { providers: ['cpu'], intraOpThreads: 0, interOpThreads: 1 })
  try {
    const input = model.batchBuffer(tensors.length)
    tensors.forEach((tensor, i) => input.set(tensor, i * model.tensorSize))
    const { scores } = await model.run(input, tensors.length)
    const bins = manifest.output.scores.bins
    const rows = tensors.map((_, i) => scores.slice(i * bins, (i + 1) * bins))
    const gap = proofGap(rows, reference)
    const passed = gap.maxAbsDeltaP <= PROOF_TOLERANCE_P && gap.maxAbsDeltaMean <= PROOF_TOLERANCE_MEAN
    return { ...gap, onnx: rows, reference, passed, seconds: (performance.now() - started) / 1000, provider: model.provider }
  } finally {
    await model.dispose()
  }
}
