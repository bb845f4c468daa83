import { open } from 'node:fs/promises'
import { resolve } from 'node:path'
import h5wasm from 'h5wasm/node'
import { CONV_LAYERS, HEAD, INPUT_CHANNELS, INPUT_SIZE } from '../models/architecture.js'
import { parseKerasModelConfig } from './keras-model-config.js'
import { detectPadding, type PaddingDetection } from './keras-padding.js'
import { ModelError } from '../models/model-error.js'
import { formatShape, validateWeights, type Tensor, type WeightSet } from '../models/weights.js'

/** A Keras weights file: its tensors and what it tells about the network that saved it. */
export interface KerasWeightsFile {
  weights: WeightSet
  /** Root attribute keras_version, when the file has one. */
  kerasVersion?: string
  /** Every layer the saving model had, weight-less ones included. */
  layerNames: string[]
  /** The stride-2 padding that network computed, read from its layer list. */
  padding: PaddingDetection
  /** save_weights: layer groups at the root; model: a full model.save, weights under model_weights. */
  layout: 'save_weights' | 'model'
  /** The Keras layer the Dense(10) head was read from (dense_1, dense, or any other name). */
  headLayer: string
}

type H5Group = InstanceType<typeof h5wasm.Group>

/**
 * Canonical tensor name for a Keras weight name: `conv1/kernel:0` → `conv1/kernel`,
 * `model_1/conv1/kernel:0` → `conv1/kernel`, `dense_1/bias:0` → `dense/bias`. Keras 2
 * named the head dense_1 (idealo's files), tf.keras names it dense; both are the head.
 * A bare `kernel:0` (newer tf.keras) takes its layer from the group it sits in.
 */
export function canonicalTensorName(weightName: string, layerName: string): string {
  const parts = weightName.replace(/:\d+$/, '').split('/')
  const param = parts[parts.length - 1] ?? ''
  const layer = parts.length >= 2 ? (parts[parts.length - 2] ?? layerName) : layerName
  return `${/^dense(_\d+)?$/.test(layer) ? 'dense' : layer}/${param}`
}

/**
 * A full model.save file knows its input size; MobileNet v1's weights are the same at every
 * size, so only this attribute can show a model trained for, say, 192x192 inputs, which
 * would score badly at the 224x224 the service feeds it.
 */
function checkInputShapes(shapes: readonly number[][], file: string): void {
  const expected = [INPUT_SIZE, INPUT_SIZE, INPUT_CHANNELS]
  const wrong = shapes.filter((s) => s.length !== 3 || s.some((d, i) => d !== expected[i]))
  if (wrong.length === 0) return
  const found = wrong.map((s) => formatShape(s.map((d) => (Number.isNaN(d) ? -1 : d)))).join(', ')
  throw new ModelError(
    'MODEL_WEIGHTS_INVALID',
    `${file} does not match NIMA MobileNet v1: its model_config declares input shape ${found} (height, width, channels; -1: any); expected ${formatShape(expected)}`,
  )
}

/**
 * A Keras string-list attribute. h5py stores lists over 64 KiB as name0, name1, ...
 * chunks, and an empty list as an empty float array; both are handled here.
 */
function readStringList(group: H5Group, name: string): string[] | undefined {
  const attrs = Object.keys(group.attrs)
  const chunkIndex = (key: string): number => Number(key.slice(name.length))
  const chunks = attrs.includes(name)
    ? [name]
    : attrs.filter((k) => k.startsWith(name) && /^\d+$/.test(k.slice(name.length))).sort((a, b) => chunkIndex(a) - chunkIndex(b))
  if (chunks.length === 0) return undefined
  const out: string[] = []
  for (const chunk of chunks) {
    const value = group.get_attribute(chunk, false)
    if (typeof value === 'string') out.push(value)
    else if (Array.isArray(value)) out.push(...value.map(String))
    else if (ArrayBuffer.isView(value) && (value as ArrayLike<number>).length === 0) continue
    else throw new ModelError('MODEL_FILE_UNREADABLE', `attribute ${name} of ${group.path}: expected a list of strings, got ${typeof value}`)
  }
  return out
}

function toFloat32(value: unknown, where: string): Float32Array {
  if (value instanceof Float32Array) return value
  if (value instanceof Float64Array) return Float32Array.from(value)
  const kind = ArrayBuffer.isView(value) ? value.constructor.name : typeof value
  throw new ModelError('MODEL_FILE_UNREADABLE', `dataset ${where}: expected float32 or float64 values, got ${kind}`)
}

function readLayerNames(root: H5Group, file: string): string[] {
  const layerNames = readStringList(root, 'layer_names')
  if (layerNames === undefined) {
    const found = Object.keys(root.attrs).join(', ') || 'none'
    throw new ModelError(
      'MODEL_FILE_UNREADABLE',
      `${file} is not a Keras save_weights file: expected a root attribute layer_names, found attributes: ${found}`,
    )
  }
  return layerNames
}

const BASE_LAYERS: ReadonlySet<string> = new Set(CONV_LAYERS.flatMap((l) => [l.name, l.batchNorm]))

/**
 * A head may have any name: when no dense/dense_N layer is found and exactly one layer
 * outside the MobileNet table holds weights, and those are a kernel and a bias, it is the
 * head. Anything else is left as it is, for the validator to list.
 */
function adoptHead(tensors: Map<string, Tensor>, layerOf: Map<string, string>): void {
  if (tensors.has(HEAD.kernel)) return
  const outside = [...tensors.keys()].filter((name) => !BASE_LAYERS.has(name.split('/')[0] ?? ''))
  const layers = new Set(outside.map((name) => name.split('/')[0]))
  const [layer] = layers
  if (layers.size !== 1 || layer === undefined || outside.length !== 2) return
  const kernel = tensors.get(`${layer}/kernel`)
  const bias = tensors.get(`${layer}/bias`)
  if (kernel === undefined || bias === undefined) return
  for (const [from, to, tensor] of [[`${layer}/kernel`, HEAD.kernel, kernel], [`${layer}/bias`, HEAD.bias, bias]] as const) {
    tensors.delete(from)
    tensors.set(to, tensor)
    layerOf.set(to, layerOf.get(from) ?? layer)
  }
}

function collectTensors(root: H5Group, layerNames: readonly string[], file: string): { tensors: Map<string, Tensor>; headLayer: string } {
  const tensors = new Map<string, Tensor>()
  const layerOf = new Map<string, string>()
  const duplicates: string[] = []
  for (const layerName of layerNames) {
    const layer = root.get(layerName)
    if (!(layer instanceof h5wasm.Group)) {
      throw new ModelError('MODEL_FILE_UNREADABLE', `${file}: layer_names lists ${layerName}, but there is no group with that name`)
    }
    for (const weightName of readStringList(layer, 'weight_names') ?? []) {
      const dataset = layer.get(weightName)
      const where = `${layerName}/${weightName}`
      if (!(dataset instanceof h5wasm.Dataset)) {
        throw new ModelError('MODEL_FILE_UNREADABLE', `${file}: weight_names of ${layerName} lists ${weightName}, but ${where} is not a dataset`)
      }
      const name = canonicalTensorName(weightName, layerName)
      if (tensors.has(name)) duplicates.push(`${name} (again at ${where})`)
      const shape = dataset.shape ?? []
      const data = toFloat32(dataset.value, where)
      if (data.length !== shape.reduce((n, d) => n * d, 1)) {
        throw new ModelError('MODEL_FILE_UNREADABLE', `dataset ${where}: shape ${formatShape(shape)} but ${data.length} values`)
      }
      tensors.set(name, { shape, data })
      layerOf.set(name, weightLayer(weightName, layerName))
    }
  }
  if (duplicates.length > 0) {
    throw new ModelError('MODEL_WEIGHTS_INVALID', `${file} holds some tensors twice: ${duplicates.join(', ')}`)
  }
  adoptHead(tensors, layerOf)
  return { tensors, headLayer: layerOf.get(HEAD.kernel) ?? '(none)' }
}

/** The Keras layer a weight belongs to, as saved (before canonicalTensorName renames it). */
function weightLayer(weightName: string, layerName: string): string {
  const parts = weightName.replace(/:\d+$/, '').split('/')
  return parts.length >= 2 ? (parts[parts.length - 2] ?? layerName) : layerName
}

const HDF5_SIGNATURE = Buffer.from([0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a])

/**
 * Whether the file carries the HDF5 superblock signature (at 0, or after a user block at
 * 512, 1024, 2048, ...). Checked up front because h5wasm does not throw on a non-HDF5
 * file: it prints a diagnostic and fails later with an unrelated message.
 */
async function hasHdf5Signature(path: string): Promise<boolean> {
  let handle
  try {
    handle = await open(path, 'r')
  } catch (cause) {
    throw new ModelError('MODEL_FILE_UNREADABLE', `cannot read ${path}: ${(cause as NodeJS.ErrnoException).code ?? String(cause)}`, { cause })
  }
  try {
    const { size } = await handle.stat()
    const probe = Buffer.alloc(HDF5_SIGNATURE.length)
    for (let offset = 0; offset + probe.length <= size && offset <= 1 << 20; offset = offset === 0 ? 512 : offset * 2) {
      await handle.read(probe, 0, probe.length, offset)
      if (probe.equals(HDF5_SIGNATURE)) return true
    }
    return false
  } finally {
    await handle.close()
  }
}

function stringAttribute(group: H5Group, name: string): string | undefined {
  if (!(name in group.attrs)) return undefined
  const value = group.get_attribute(name, false)
  return typeof value === 'string' ? value : undefined
}

/**
 * Reads a Keras `save_weights` HDF5 (or a full `model.save` file, whose weights sit under
 * model_weights): tensors under canonical names, validated against the architecture so a
 * wrong file fails here with every problem listed, plus the padding convention its layer
 * list reveals.
 */
export async function readKerasFile(path: string): Promise<KerasWeightsFile> {
  const absolute = resolve(path)
  if (!(await hasHdf5Signature(absolute))) {
    throw new ModelError('MODEL_FILE_UNREADABLE', `${absolute} is not an HDF5 file: expected the HDF5 signature, found other bytes`)
  }
  await h5wasm.ready
  const file = new h5wasm.File(absolute, 'r')
  try {
    const nested = file.get('model_weights')
    const root = nested instanceof h5wasm.Group ? nested : file
    const layerNames = readLayerNames(root, absolute)
    const modelConfigText = stringAttribute(file, 'model_config')
    const config = modelConfigText === undefined ? undefined : parseKerasModelConfig(modelConfigText)
    const { tensors: weights, headLayer } = collectTensors(root, layerNames, absolute)
    validateWeights(weights, absolute)
    if (config !== undefined) checkInputShapes(config.inputShapes, absolute)
    const kerasVersion = stringAttribute(root, 'keras_version') ?? stringAttribute(file, 'keras_version')
    // A nested base model's weight-less layers appear only in model_config.
    const allLayers = config === undefined ? layerNames : [...new Set([...layerNames, ...config.layerNames])]
    const layout = nested instanceof h5wasm.Group ? 'model' : 'save_weights'
    return { weights, kerasVersion, layerNames, padding: detectPadding(allLayers, kerasVersion), layout, headLayer }
  } finally {
    file.close()
  }
}

/** The validated tensors of a Keras weights file, when the padding question is settled elsewhere. */
export async function readKerasWeights(path: string): Promise<WeightSet> {
  return (await readKerasFile(path)).weights
}
