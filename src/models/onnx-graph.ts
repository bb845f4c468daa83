import { CONV_LAYERS, FEATURE_MAP_SIZE, FEATURE_SIZE, HEAD, INPUT_CHANNELS, INPUT_SIZE, RELU6_MAX, SCORE_BINS, type ConvLayer, type PaddingMode } from './architecture.js'
import { foldConvLayer } from './fold-batchnorm.js'
import { floatInitializer, floatValueInfo, node, onnx, scalarFloatInitializer, type NodeProto, type TensorProto } from './onnx-proto.js'
import { requireTensor, validateWeights, type WeightSet } from './weights.js'

export type { PaddingMode }

export interface OnnxBuildOptions {
  /**
   * Default 'keras' (stride-2 convs pad only bottom/right). 'symmetric' pads one pixel on
   * every side: right only for files saved by Keras 2.1.5 to 2.2.0 (see detectPadding),
   * and the mistake the conversion-proof test must catch for every other file.
   */
  padding?: PaddingMode
  /** Free text stored in the model, e.g. where the weights came from. */
  docString?: string
  /** Extra key/value pairs for ModelProto.metadata_props. */
  metadata?: Readonly<Record<string, string>>
}

/** Opset 13 has every op used here with its current semantics (Clip takes min/max inputs). */
export const OPSET_VERSION = 13
/** IR 8 is the newest onnx-proto 8 knows; onnxruntime-node 1.30 reads IR 3..11. */
export const IR_VERSION = 8

/**
 * `featureMap` is the last conv block's output after its ReLU6, [batch, 1024, 7, 7] in
 * ONNX's NCHW layout, exposed so /explain can build class activation maps. ONNX Runtime
 * computes only what the requested outputs need, and this tensor is computed for
 * `scores` anyway, so a run that asks for scores alone costs what it did before.
 */
export const GRAPH_NAMES = { input: 'input', features: 'features', scores: 'scores', featureMap: 'feature_map' } as const

/** ONNX Conv pads order: [top, left, bottom, right]. */
function convPads(layer: ConvLayer, mode: PaddingMode): number[] {
  const p = layer.padding
  if (mode === 'symmetric' && layer.stride === 2) return [1, 1, 1, 1]
  return [p.top, p.left, p.bottom, p.right]
}

/**
 * Builds the NIMA MobileNet v1 ONNX model from Keras weights and returns its encoded
 * bytes. Input `input` is NHWC [batch, 224, 224, 3] in [-1, 1]; outputs are `features`
 * [batch, 1024] (pooled embedding), `scores` [batch, 10] (softmax over bins 1..10) and
 * `feature_map` [batch, 1024, 7, 7] (before pooling; NCHW).
 */
export function buildOnnxModel(weights: WeightSet, options: OnnxBuildOptions = {}): Uint8Array {
  const mode = options.padding ?? 'keras'
  if (mode !== 'keras' && mode !== 'symmetric') {
    throw new RangeError(`padding: expected 'keras' or 'symmetric', got ${JSON.stringify(mode)}`)
  }
  validateWeights(weights, 'the ONNX builder input')

  const nodes: NodeProto[] = []
  const initializers: TensorProto[] = [scalarFloatInitializer('relu6_min', 0), scalarFloatInitializer('relu6_max', RELU6_MAX)]

  // Keras is channels-last; ONNX Conv is channels-first, so transpose once at the start.
  nodes.push(node('Transpose', [GRAPH_NAMES.input], ['input_nchw'], { perm: [0, 3, 1, 2] }))
  let current = 'input_nchw'
  const last = CONV_LAYERS[CONV_LAYERS.length - 1]!
  for (const layer of CONV_LAYERS) {
    const folded = foldConvLayer(weights, layer)
    initializers.push(floatInitializer(`${layer.name}/weight`, folded.weight), floatInitializer(`${layer.name}/bias`, folded.bias))
    nodes.push(
      node('Conv', [current, `${layer.name}/weight`, `${layer.name}/bias`], [`${layer.name}/conv`], {
        kernel_shape: [layer.kernelSize, layer.kernelSize],
        strides: [layer.stride, layer.stride],
        pads: convPads(layer, mode),
        group: layer.kind === 'depthwise' ? layer.inChannels : 1,
      }),
      node('Clip', [`${layer.name}/conv`, 'relu6_min', 'relu6_max'], [layer === last ? GRAPH_NAMES.featureMap : `${layer.name}/relu6`]),
    )
    current = layer === last ? GRAPH_NAMES.featureMap : `${layer.name}/relu6`
  }

  initializers.push(floatInitializer(HEAD.kernel, requireTensor(weights, HEAD.kernel)), floatInitializer(HEAD.bias, requireTensor(weights, HEAD.bias)))
  nodes.push(
    node('GlobalAveragePool', [current], ['pooled']),
    node('Flatten', ['pooled'], [GRAPH_NAMES.features], { axis: 1 }),
    // Keras Dense kernel is [in, out], which is Gemm's B without transposition.
    node('Gemm', [GRAPH_NAMES.features, HEAD.kernel, HEAD.bias], ['logits']),
    node('Softmax', ['logits'], [GRAPH_NAMES.scores], { axis: -1 }),
  )

  const model = onnx.ModelProto.create({
    irVersion: IR_VERSION,
    opsetImport: [{ domain: '', version: OPSET_VERSION }],
    producerName: 'nima-serve',
    docString: options.docString ?? '',
    metadataProps: Object.entries({ padding: mode, ...options.metadata }).map(([key, value]) => ({ key, value })),
    graph: {
      name: 'nima_mobilenet_v1',
      node: nodes,
      initializer: initializers,
      input: [floatValueInfo(GRAPH_NAMES.input, ['batch', INPUT_SIZE, INPUT_SIZE, INPUT_CHANNELS])],
      output: [
        floatValueInfo(GRAPH_NAMES.features, ['batch', FEATURE_SIZE]),
        floatValueInfo(GRAPH_NAMES.scores, ['batch', SCORE_BINS]),
        floatValueInfo(GRAPH_NAMES.featureMap, ['batch', FEATURE_SIZE, FEATURE_MAP_SIZE, FEATURE_MAP_SIZE]),
      ],
    },
  })
  return onnx.ModelProto.encode(model).finish()
}
