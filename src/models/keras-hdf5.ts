import { open } from 'node:fs/promises'
import { resolve } from 'node:path'
import h5wasm from 'h5wasm/node'
import { detectPadding, type PaddingDetection } from './keras-padding.js'
import { ModelError } from './model-error.js'
import { formatShape, validateWeights, type Tensor, type WeightSet } from './weights.js'

/** A Keras weights file: its tensors and what it tells about the network that saved it. */
export interface KerasWeightsFile {
  weights: WeightSet
  /** Root attribute keras_version, when the file has one. */
  kerasVersion?: string
  /** Every layer the saving model had, weight-less ones included. */
  layerNames: string[]
  /** The stride-2 padding that network computed, read from its layer list. */
  padding: PaddingDetection
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

function collectTensors(root: H5Group, layerNames: readonly string[], file: string): Map<string, Tensor> {
  const tensors = new Map<string, Tensor>()
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
    }
  }
  if (duplicates.length > 0) {
    throw new ModelError('MODEL_WEIGHTS_INVALID', `${file} holds some tensors twice: ${duplicates.join(', ')}`)
  }
  return tensors
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
    const weights = collectTensors(root, layerNames, absolute)
    validateWeights(weights, absolute)
    const kerasVersion = stringAttribute(root, 'keras_version') ?? stringAttribute(file, 'keras_version')
    return { weights, kerasVersion, layerNames, padding: detectPadding(layerNames, kerasVersion) }
  } finally {
    file.close()
  }
}

/** The validated tensors of a Keras weights file, when the padding question is settled elsewhere. */
export async function readKerasWeights(path: string): Promise<WeightSet> {
  return (await readKerasFile(path)).weights
}
