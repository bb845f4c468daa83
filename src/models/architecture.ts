/**
 * The one definition of idealo's NIMA network: Keras MobileNet v1 (alpha 1.0, no top) with
 * global average pooling and a Dense(10) softmax head. The ONNX builder, the weight
 * validator and the synthetic generator all read this table, so the topology cannot drift
 * between them.
 */

export const INPUT_SIZE = 224
export const INPUT_CHANNELS = 3
/** Keras BatchNormalization default in MobileNet (not PyTorch's 1e-5). */
export const BN_EPSILON = 1e-3
export const RELU6_MAX = 6
export const FEATURE_SIZE = 1024
/** Height and width of the last feature map: 224 / 32, each cell a 32×32-pixel stride of the input. */
export const FEATURE_MAP_SIZE = 7
export const SCORE_BINS = 10

/**
 * How stride-2 convs are padded. 'keras': bottom/right only, i.e. TF 'same' and
 * ZeroPadding2D(((0, 1), (0, 1))), what Keras <= 2.1.4 and >= 2.2.1 MobileNet compute.
 * 'symmetric': one pixel on every side, what Keras 2.1.5 to 2.2.0 MobileNet computes
 * (ZeroPadding2D((1, 1)) before every 3x3 conv, keras PR #9473); wrong for any other file.
 */
export type PaddingMode = 'keras' | 'symmetric'

/** Pixels of zero padding on each side of a conv input. */
export interface Padding {
  readonly top: number
  readonly left: number
  readonly bottom: number
  readonly right: number
}

export interface ConvLayer {
  /** conv: full 3x3 conv; depthwise: 3x3 per channel; pointwise: 1x1. */
  readonly kind: 'conv' | 'depthwise' | 'pointwise'
  /** Keras layer name, e.g. conv_dw_3; also the prefix of its kernel tensor. */
  readonly name: string
  readonly kernelTensor: string
  /** Keras name of the BatchNormalization layer that follows, e.g. conv_dw_3_bn. */
  readonly batchNorm: string
  readonly kernelSize: 1 | 3
  readonly stride: 1 | 2
  readonly inChannels: number
  readonly outChannels: number
  /** Zero padding Keras applies before this conv. */
  readonly padding: Padding
}

export const POINTWISE_WIDTHS = [64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024] as const
/** 1-based depthwise-separable blocks whose depthwise conv has stride 2. */
export const STRIDE2_BLOCKS: ReadonlySet<number> = new Set([2, 4, 6, 12])

export const BN_PARAMS = ['gamma', 'beta', 'moving_mean', 'moving_variance'] as const

export const HEAD = { kernel: 'dense/kernel', bias: 'dense/bias', inputs: FEATURE_SIZE, outputs: SCORE_BINS } as const

/**
 * Keras padding: a stride-2 conv is ZeroPadding2D(((0, 1), (0, 1))) then 'valid', so only
 * the bottom row and right column are padded (TF 'same' does the same on even inputs).
 * Stride-1 convs are 'same': kernel 3 pads one pixel on every side, kernel 1 none.
 */
export function kerasPadding(kernelSize: 1 | 3, stride: 1 | 2): Padding {
  if (stride === 2) return { top: 0, left: 0, bottom: 1, right: 1 }
  const p = (kernelSize - 1) / 2
  return { top: p, left: p, bottom: p, right: p }
}

function buildLayers(): ConvLayer[] {
  const layers: ConvLayer[] = [
    {
      kind: 'conv',
      name: 'conv1',
      kernelTensor: 'conv1/kernel',
      batchNorm: 'conv1_bn',
      kernelSize: 3,
      stride: 2,
      inChannels: INPUT_CHANNELS,
      outChannels: 32,
      padding: kerasPadding(3, 2),
    },
  ]
  let channels = 32
  POINTWISE_WIDTHS.forEach((width, index) => {
    const block = index + 1
    const stride = STRIDE2_BLOCKS.has(block) ? 2 : 1
    layers.push({
      kind: 'depthwise',
      name: `conv_dw_${block}`,
      kernelTensor: `conv_dw_${block}/depthwise_kernel`,
      batchNorm: `conv_dw_${block}_bn`,
      kernelSize: 3,
      stride,
      inChannels: channels,
      outChannels: channels,
      padding: kerasPadding(3, stride),
    })
    layers.push({
      kind: 'pointwise',
      name: `conv_pw_${block}`,
      kernelTensor: `conv_pw_${block}/kernel`,
      batchNorm: `conv_pw_${block}_bn`,
      kernelSize: 1,
      stride: 1,
      inChannels: channels,
      outChannels: width,
      padding: kerasPadding(1, 1),
    })
    channels = width
  })
  return layers
}

/** The 27 conv layers in forward order, each followed by BatchNorm and ReLU6. */
export const CONV_LAYERS: readonly ConvLayer[] = Object.freeze(buildLayers())

/** Keras kernel shape: HWIO for conv/pointwise, HWC1 for depthwise. */
export function kerasKernelShape(layer: ConvLayer): number[] {
  const k = layer.kernelSize
  return layer.kind === 'depthwise' ? [k, k, layer.inChannels, 1] : [k, k, layer.inChannels, layer.outChannels]
}

function buildExpectedTensors(): Map<string, readonly number[]> {
  const table = new Map<string, readonly number[]>()
  for (const layer of CONV_LAYERS) {
    table.set(layer.kernelTensor, kerasKernelShape(layer))
    for (const param of BN_PARAMS) table.set(`${layer.batchNorm}/${param}`, [layer.outChannels])
  }
  table.set(HEAD.kernel, [HEAD.inputs, HEAD.outputs])
  table.set(HEAD.bias, [HEAD.outputs])
  return table
}

/** Canonical Keras tensor name → shape, in Keras weight order (137 tensors). */
export const EXPECTED_TENSORS: ReadonlyMap<string, readonly number[]> = buildExpectedTensors()

export function elementCount(shape: readonly number[]): number {
  return shape.reduce((n, d) => n * d, 1)
}

/** Total parameters, BatchNorm statistics included (3,239,114 for this network). */
export function parameterCount(): number {
  let total = 0
  for (const shape of EXPECTED_TENSORS.values()) total += elementCount(shape)
  return total
}
