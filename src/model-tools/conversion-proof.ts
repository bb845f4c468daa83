/**
 * The conversion proof: the converted ONNX model, run by ONNX Runtime through the service's
 * own ManifestModel, must give the probabilities of the independent float64 Keras forward
 * pass (reference-forward.ts) on the same input tensors. `models import` runs it before it
 * installs anything; test/models/conversion-proof.test.ts holds the converter to the same
 * tolerances.
 *
 * How close is close enough depends on the weights, not only on the conversion: a network
 * whose BatchNorms amplify (small variances) and whose head is steep carries float32
 * rounding to the output at 1e-4, where idealo's weights show 1e-7. So the reference also
 * runs in float32, and its own distance from float64 measures the rounding floor of these
 * weights on these inputs. ONNX Runtime, also float32, is accepted within
 * PROOF_ROUNDING_MULTIPLE times that floor plus a fixed floor (measured: at most 2.2x, while
 * the wrong padding lands 40x or more beyond it; docs/models.md has the table). Weights whose float32 evaluation is
 * itself too far from float64 are refused outright: the service computes in float32.
 */
import type { PaddingMode } from '../models/architecture.js'
import type { ModelManifest } from '../models/manifest.js'
import { meanOf } from '../scoring/distribution.js'
import { loadReferenceWeights, referenceForward, type KerasMobileNet } from './reference-forward.js'
import { ManifestModel } from '../models/model-pipeline.js'

/** The fixed part of the |Δp| tolerance; float32 ONNX vs float64 reference measures about 1e-7 on idealo's weights (docs/models.md). */
export const PROOF_FLOOR_P = 1e-5
/** The fixed part of the |Δ mean score| tolerance, on the 1..10 scale. */
export const PROOF_FLOOR_MEAN = 1e-4
/** ONNX Runtime may be this many times as far from float64 as the float32 reference is. */
export const PROOF_ROUNDING_MULTIPLE = 10
/**
 * Beyond these the float32 reference itself is too far from float64 to serve the weights
 * in float32 (and the tolerance it would give, too wide to mean much): a twentieth of a
 * score point. Weights at the floor of issue 22 measure 8e-4 in the mean.
 */
export const FLOAT32_LIMIT_P = 1e-2
export const FLOAT32_LIMIT_MEAN = 5e-2

/** The tolerances for weights whose float32 reference lands `rounding` from float64. */
export function proofTolerance(rounding: Pick<ProofGap, 'maxAbsDeltaP' | 'maxAbsDeltaMean'>): { p: number; mean: number } {
  return { p: PROOF_FLOOR_P + PROOF_ROUNDING_MULTIPLE * rounding.maxAbsDeltaP, mean: PROOF_FLOOR_MEAN + PROOF_ROUNDING_MULTIPLE * rounding.maxAbsDeltaMean }
}

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
  /** How far the float32 reference is from the float64 one: these weights' rounding floor. */
  float32Reference: ProofGap
  tolerance: { p: number; mean: number }
  passed: boolean
  /** Why it failed: ONNX beyond the tolerance, or the weights beyond float32's reach. */
  failure?: 'disagrees' | 'float32-unfit'
  seconds: number
  provider: string
}

/** The reference restates the padding rule under its own names, on purpose. */
export function referenceEra(padding: PaddingMode): KerasMobileNet {
  return padding === 'symmetric' ? 'keras-2.1.6' : 'keras-2.2'
}

/** The verdict on ONNX Runtime's distance from float64 (`gap`), given the float32 reference's (`rounding`). */
export function judgeProof(gap: ProofGap, rounding: ProofGap): Pick<ConversionProof, 'passed' | 'failure' | 'tolerance'> {
  const tolerance = proofTolerance(rounding)
  if (rounding.maxAbsDeltaP > FLOAT32_LIMIT_P || rounding.maxAbsDeltaMean > FLOAT32_LIMIT_MEAN) return { passed: false, failure: 'float32-unfit', tolerance }
  if (gap.maxAbsDeltaP <= tolerance.p && gap.maxAbsDeltaMean <= tolerance.mean) return { passed: true, tolerance }
  return { passed: false, failure: 'disagrees', tolerance }
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
    const delta = Math.abs(meanOf(p) - meanOf(ref))
    if (delta > maxAbsDeltaMean) [maxAbsDeltaMean, worst] = [delta, i]
  })
  return { maxAbsDeltaP, maxAbsDeltaMean, worst }
}

/**
 * Runs `onnx` (opened with `manifest`, on the CPU provider) and the float64 and float32
 * references of the Keras file at `hdf5Path` with `padding` on every tensor, and compares them. It reports;
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
  const float32Reference = proofGap(
    tensors.map((tensor) => referenceForward(weights, tensor, referenceEra(padding), 'float32')),
    reference,
  )
  const model = await ManifestModel.open(onnx, manifest, { providers: ['cpu'], intraOpThreads: 0, interOpThreads: 1 })
  try {
    const input = model.batchBuffer(tensors.length)
    tensors.forEach((tensor, i) => input.set(tensor, i * model.tensorSize))
    const { scores } = await model.run(input, tensors.length)
    const bins = manifest.output.scores.bins
    const rows = tensors.map((_, i) => scores.slice(i * bins, (i + 1) * bins))
    const gap = proofGap(rows, reference)
    return { ...gap, onnx: rows, reference, float32Reference, ...judgeProof(gap, float32Reference), seconds: (performance.now() - started) / 1000, provider: model.provider }
  } finally {
    await model.dispose()
  }
}
