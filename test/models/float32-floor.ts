import { CONV_LAYERS, HEAD } from '../../src/models/architecture.js'
import { mulberry32 } from '../../src/util/prng.js'
import { syntheticWeights } from '../../src/model-tools/synthetic-weights.js'
import { makeTensor, type Tensor, type WeightSet } from '../../src/models/weights.js'

/**
 * Weights at float32's floor, as a fine-tuned network can have them: every BatchNorm
 * variance log-uniform over e^-3..1, drawn apart from its kernel (so each BatchNorm scales
 * by up to 1/sqrt(e^-3 + 0.001) ≈ 4.4 and 27 of them amplify rounding), and a head with
 * N(0, 0.05) weights (four times the synthetic models', so logits spread widely). A correct
 * float32 conversion lands around 1e-4 from the float64 reference here: float32 rounding,
 * not a bug (issue 22).
 */
export function float32FloorWeights(seed: number): WeightSet {
  const base = syntheticWeights(seed)
  const rng = mulberry32(seed ^ 0x5eed)
  const out = new Map<string, Tensor>(base)
  for (const layer of CONV_LAYERS) {
    const name = `${layer.batchNorm}/moving_variance`
    const variance = new Float32Array(layer.outChannels).map(() => Math.exp(rng.uniform(-3, 0)))
    out.set(name, makeTensor([layer.outChannels], variance))
  }
  out.set(HEAD.kernel, makeTensor([HEAD.inputs, HEAD.outputs], new Float32Array(HEAD.inputs * HEAD.outputs).map(() => 0.05 * rng.normal())))
  return out
}
