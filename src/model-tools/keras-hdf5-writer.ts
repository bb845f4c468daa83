import { resolve } from 'node:path'
import h5wasm from 'h5wasm/node'
import { BN_PARAMS, CONV_LAYERS, HEAD, INPUT_CHANNELS, INPUT_SIZE, POINTWISE_WIDTHS, STRIDE2_BLOCKS } from '../models/architecture.js'
import { requireTensor, validateWeights, type WeightSet } from '../models/weights.js'

type H5Group = InstanceType<typeof h5wasm.Group>

export interface KerasWriteOptions {
  /** Keras 2 (idealo's files) named the head dense_1; tf.keras names it dense; a user's model may call it anything. */
  headLayer?: string
  /**
   * 'save_weights' (default): layer groups at the root, as `model.save_weights(path)`.
   * 'model': a full `model.save(path)` file: root attributes model_config (the model as
   * JSON) and training_config, the weights under model_weights/.
   */
  layout?: 'save_weights' | 'model'
  /** Input height and width written into model_config (layout 'model' only); default 224. */
  inputSize?: number
  /**
   * Write `weights` even if they are not NIMA MobileNet v1 (other alpha, head size, layer
   * names), to make the files the reader must refuse. Their tensors are grouped by layer name.
   */
  unchecked?: boolean
  /**
   * Put the MobileNet base inside one sub-model group (e.g. model_1), which is how Keras
   * saves a model that nests another; datasets then sit at model_1/conv1/kernel:0.
   */
  nestedBase?: string
  /**
   * Which Keras MobileNet's layer list to write. 'keras-2.2' (default): ZeroPadding2D
   * layers conv1_pad and conv_pad_{2,4,6,12} only. 'keras-2.1.6': conv1_pad and a
   * conv_pad_N in every block, as Keras 2.1.5-2.2.0 built it (symmetric padding).
   */
  mobilenet?: 'keras-2.2' | 'keras-2.1.6'
}

/** Keras layers in idealo's model order; layers without weights still get a group. */
function baseLayerNames(mobilenet: 'keras-2.2' | 'keras-2.1.6'): string[] {
  const names = ['conv1_pad', 'conv1', 'conv1_bn', 'conv1_relu']
  POINTWISE_WIDTHS.forEach((_, index) => {
    const b = index + 1
    if (mobilenet === 'keras-2.1.6' || STRIDE2_BLOCKS.has(b)) names.push(`conv_pad_${b}`)
    names.push(`conv_dw_${b}`, `conv_dw_${b}_bn`, `conv_dw_${b}_relu`, `conv_pw_${b}`, `conv_pw_${b}_bn`, `conv_pw_${b}_relu`)
  })
  return names
}

/** Canonical tensor names each Keras layer owns, in Keras weight order. */
function layerTensors(): Map<string, string[]> {
  const owned = new Map<string, string[]>()
  for (const layer of CONV_LAYERS) {
    owned.set(layer.name, [layer.kernelTensor])
    owned.set(layer.batchNorm, BN_PARAMS.map((p) => `${layer.batchNorm}/${p}`))
  }
  return owned
}

/** For unchecked sets: every tensor under its own layer prefix, in the set's order. */
function tensorsByLayer(weights: WeightSet): Map<string, string[]> {
  const owned = new Map<string, string[]>()
  for (const name of weights.keys()) {
    const layer = name.split('/')[0] ?? name
    if (layer !== 'dense') owned.set(layer, [...(owned.get(layer) ?? []), name])
  }
  return owned
}

/** A minimal Keras 2 functional-model config: what the reader looks at (layer names, InputLayer shape). */
function modelConfig(layers: readonly string[], nested: { name: string; layers: readonly string[] } | undefined, inputSize: number): string {
  const layer = (name: string): object =>
    name === 'input_1'
      ? { class_name: 'InputLayer', name, config: { name, batch_input_shape: [null, inputSize, inputSize, INPUT_CHANNELS], dtype: 'float32' } }
      : nested !== undefined && name === nested.name
        ? { class_name: 'Model', name, config: { name, layers: [layer('input_1'), ...nested.layers.map(layer)] } }
        : { class_name: /pad/.test(name) ? 'ZeroPadding2D' : 'Layer', name, config: { name } }
  return JSON.stringify({ class_name: 'Model', config: { name: 'model_1', layers: layers.map(layer) } })
}

/** h5py writes numpy byte-string arrays as fixed-length strings; so do we. */
function setStringList(group: H5Group, name: string, values: readonly string[]): void {
  if (values.length === 0) {
    // What h5py stores for an empty Python list: an empty float64 array.
    group.create_attribute(name, new Float64Array(0), [0])
    return
  }
  const width = Math.max(1, ...values.map((v) => Buffer.byteLength(v)))
  group.create_attribute(name, [...values], [values.length], `S${width}`)
}

function writeLayer(parent: H5Group, layer: string, tensors: readonly { weightName: string; name: string }[], weights: WeightSet): void {
  const group = parent.create_group(layer)
  setStringList(group, 'weight_names', tensors.map((t) => t.weightName))
  for (const { weightName, name } of tensors) {
    const tensor = requireTensor(weights, name)
    const parts = weightName.split('/')
    let target = group
    for (const part of parts.slice(0, -1)) target = (target.get(part) as H5Group | null) ?? target.create_group(part)
    target.create_dataset({ name: parts[parts.length - 1] ?? weightName, data: tensor.data, shape: [...tensor.shape], dtype: '<f4' })
  }
}

/**
 * Writes weights in the layout of Keras 2 `model.save_weights(path)` (root attribute
 * layer_names, one group per layer with attribute weight_names, datasets at
 * `<layer>/<weight name>`), or of `model.save(path)` (the same under model_weights/, plus
 * model_config). Used to make test fixtures that look like idealo's files and users' own.
 */
export async function writeKerasWeights(path: string, weights: WeightSet, options: KerasWriteOptions = {}): Promise<void> {
  if (options.unchecked !== true) validateWeights(weights, 'the HDF5 writer input')
  const head = options.headLayer ?? 'dense_1'
  const owned = options.unchecked === true ? tensorsByLayer(weights) : layerTensors()
  const headTensors = [
    { weightName: `${head}/kernel:0`, name: HEAD.kernel },
    { weightName: `${head}/bias:0`, name: HEAD.bias },
  ].filter((t) => weights.has(t.name))
  const baseTensors = (layer: string): { weightName: string; name: string }[] =>
    (owned.get(layer) ?? []).map((name) => ({ weightName: `${name}:0`, name }))

  await h5wasm.ready
  const file = new h5wasm.File(resolve(path), 'w')
  try {
    const mobilenet = options.mobilenet ?? 'keras-2.2'
    const kerasVersion = mobilenet === 'keras-2.1.6' ? '2.1.6' : '2.2.4'
    const v1 = owned.has(CONV_LAYERS[0]!.name)
    const base = v1 ? baseLayerNames(mobilenet) : []
    for (const layer of owned.keys()) if (!base.includes(layer)) base.push(layer)
    const top = options.nestedBase
      ? ['input_1', options.nestedBase, 'dropout_1', head]
      : ['input_1', ...base, 'global_average_pooling2d_1', 'dropout_1', head]
    let root: H5Group = file
    file.create_attribute('backend', 'tensorflow')
    file.create_attribute('keras_version', kerasVersion)
    if (options.layout === 'model') {
      const nested = options.nestedBase === undefined ? undefined : { name: options.nestedBase, layers: base }
      file.create_attribute('model_config', modelConfig(top, nested, options.inputSize ?? INPUT_SIZE))
      file.create_attribute('training_config', JSON.stringify({ loss: 'earth_movers_distance', optimizer_config: { class_name: 'Adam' } }))
      root = file.create_group('model_weights')
      root.create_attribute('backend', 'tensorflow')
      root.create_attribute('keras_version', kerasVersion)
    }
    setStringList(root, 'layer_names', top)
    for (const layer of top) {
      if (layer === head) writeLayer(root, layer, headTensors, weights)
      else if (layer === options.nestedBase) writeLayer(root, layer, base.flatMap(baseTensors), weights)
      else writeLayer(root, layer, baseTensors(layer), weights)
    }
  } finally {
    file.close()
  }
}
