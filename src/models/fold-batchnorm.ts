import { BN_EPSILON, type ConvLayer } from './architecture.js'
import { requireTensor, type Tensor, type WeightSet } from './weights.js'

/** A conv with its BatchNorm folded in, in ONNX layout. */
export interface FoldedConv {
  /** OIHW; depthwise is [C, 1, kh, kw] (ONNX Conv with group = C). */
  readonly weight: Tensor
  readonly bias: Tensor
}

/**
 * Folds BatchNorm into the preceding bias-free conv and converts the kernel from Keras
 * layout (HWIO, depthwise HWC1) to ONNX OIHW:
 *   scale = gamma / sqrt(var + eps),  w' = w * scale[o],  b' = beta - mean * scale.
 * The arithmetic runs in float64 and rounds once, so folding adds no more than one
 * float32 rounding per weight.
 */
export function foldConvLayer(weights: WeightSet, layer: ConvLayer, epsilon = BN_EPSILON): FoldedConv {
  const kernel = requireTensor(weights, layer.kernelTensor).data
  const gamma = requireTensor(weights, `${layer.batchNorm}/gamma`).data
  const beta = requireTensor(weights, `${layer.batchNorm}/beta`).data
  const mean = requireTensor(weights, `${layer.batchNorm}/moving_mean`).data
  const variance = requireTensor(weights, `${layer.batchNorm}/moving_variance`).data

  const outC = layer.outChannels
  const k = layer.kernelSize
  const scale = new Float64Array(outC)
  const bias = new Float32Array(outC)
  for (let o = 0; o < outC; o++) {
    scale[o] = gamma[o]! / Math.sqrt(variance[o]! + epsilon)
    bias[o] = beta[o]! - mean[o]! * scale[o]!
  }

  if (layer.kind === 'depthwise') {
    // Keras [kh, kw, C, 1] → ONNX [C, 1, kh, kw].
    const weight = new Float32Array(outC * k * k)
    for (let y = 0; y < k; y++)
      for (let x = 0; x < k; x++)
        for (let c = 0; c < outC; c++) weight[(c * k + y) * k + x] = kernel[(y * k + x) * outC + c]! * scale[c]!
    return { weight: { shape: [outC, 1, k, k], data: weight }, bias: { shape: [outC], data: bias } }
  }

  // Keras [kh, kw, I, O] → ONNX [O, I, kh, kw].
  const inC = layer.inChannels
  const weight = new Float32Array(outC * inC * k * k)
  for (let y = 0; y < k; y++)
    for (let x = 0; x < k; x++)
      for (let i = 0; i < inC; i++) {
        const row = ((y * k + x) * inC + i) * outC
        for (let o = 0; o < outC; o++) weight[((o * inC + i) * k + y) * k + x] = kernel[row + o]! * scale[o]!
      }
  return { weight: { shape: [outC, inC, k, k], data: weight }, bias: { shape: [outC], data: bias } }
}
