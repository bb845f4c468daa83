import { CONV_LAYERS, EXPECTED_TENSORS, HEAD, elementCount, kerasKernelShape, type ConvLayer } from '../models/architecture.js'
import { mulberry32, type Rng } from '../util/prng.js'
import { makeTensor, type Tensor, type WeightSet } from '../models/weights.js'

/**
 * Head weight scale. GAP features are ReLU6 outputs averaged over the image (about 1.8 on
 * average here), so 1024 of them under N(0, 0.012) weights give logits spread by about
 * one unit: a softmax that is neither one-hot nor flat (the synthetic-weights test checks).
 */
const HEAD_KERNEL_STD = 0.012
const HEAD_BIAS_STD = 0.1

export function assertSeed(seed: number): void {
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
    throw new RangeError(`seed: expected an integer from 0 to 4294967295, got ${seed}`)
  }
}

function fill(count: number, draw: () => number): Float32Array {
  const data = new Float32Array(count)
  for (let i = 0; i < count; i++) data[i] = draw()
  return data
}

/** He-normal: std sqrt(2 / fan_in), fan_in = receptive field x input channels per group. */
function heKernel(rng: Rng, layer: ConvLayer): Float32Array {
  const inputsPerOutput = layer.kind === 'depthwise' ? 1 : layer.inChannels
  const std = Math.sqrt(2 / (layer.kernelSize * layer.kernelSize * inputsPerOutput))
  return fill(elementCount(kerasKernelShape(layer)), () => rng.normal() * std)
}

/**
 * A conv and its BatchNorm with statistics shaped like a trained network's. They are
 * what the ONNX builder folds, so flat gamma=1/var=1 values would let a folding bug pass
 * unnoticed: variances are log-uniform over 0.01..10 (three decades, always positive),
 * gamma around 1, beta and the means varied.
 *
 * As in a trained network, each output channel's kernel is scaled by sqrt(variance), so
 * the statistics describe the channel they normalise. With statistics drawn apart from
 * the kernel, BatchNorm would amplify by ~1.8x per layer, 27 layers would amplify float32
 * rounding by ~10^6, and no float32 runtime could agree with a float64 reference, however
 * correct the conversion.
 */
function convWithBatchNorm(rng: Rng, layer: ConvLayer): Map<string, Tensor> {
  const channels = layer.outChannels
  const kernel = heKernel(rng, layer)
  const variance = fill(channels, () => Math.exp(rng.uniform(Math.log(0.01), Math.log(10))))
  const gamma = fill(channels, () => rng.uniform(0.6, 1.4))
  const beta = fill(channels, () => 0.2 * rng.normal())
  const mean = fill(channels, () => 0)
  for (let c = 0; c < channels; c++) mean[c] = 0.7 * Math.sqrt(variance[c]!) * rng.normal()
  // Output channel is the last axis in both HWIO and depthwise HWC1.
  for (let i = 0; i < kernel.length; i++) kernel[i]! *= Math.sqrt(variance[i % channels]!)
  return new Map([
    [layer.kernelTensor, makeTensor(kerasKernelShape(layer), kernel)],
    [`${layer.batchNorm}/gamma`, makeTensor([channels], gamma)],
    [`${layer.batchNorm}/beta`, makeTensor([channels], beta)],
    [`${layer.batchNorm}/moving_mean`, makeTensor([channels], mean)],
    [`${layer.batchNorm}/moving_variance`, makeTensor([channels], variance)],
  ])
}

/** Seeded MobileNet v1 weights: the same seed gives the same bytes on every machine. */
export function syntheticWeights(seed: number): WeightSet {
  assertSeed(seed)
  const rng = mulberry32(seed)
  const weights = new Map<string, Tensor>()
  for (const layer of CONV_LAYERS) {
    for (const [name, tensor] of convWithBatchNorm(rng, layer)) weights.set(name, tensor)
  }
  weights.set(HEAD.kernel, makeTensor([HEAD.inputs, HEAD.outputs], fill(HEAD.inputs * HEAD.outputs, () => HEAD_KERNEL_STD * rng.normal())))
  weights.set(HEAD.bias, makeTensor([HEAD.outputs], fill(HEAD.outputs, () => HEAD_BIAS_STD * rng.normal())))
  if (weights.size !== EXPECTED_TENSORS.size) throw new Error('synthetic weights do not cover the architecture table')
  return weights
}
