/**
 * An independent float64 forward pass of idealo's NIMA MobileNet v1, written the plain way
 * Keras computes it: NHWC, explicit ZeroPadding2D, 'valid' convs, unfolded BatchNorm,
 * ReLU6, global average pooling, Dense, softmax. The same pass runs in float32 too (every
 * sum, product and activation rounded to float32, as a float32 runtime stores them): how
 * far that lands from float64 is the rounding floor the proof measures ONNX Runtime against. It shares nothing with the converter on
 * purpose: the layer table, the padding rule and the way tensors are found in the HDF5 file
 * are restated here, so a mistake in the converter cannot cancel out against the same
 * mistake in the reference. `models import` runs it as its conversion proof, and so does
 * test/models/conversion-proof.test.ts; keep it free of imports from the converter.
 */
import { resolve } from 'node:path'
import h5wasm from 'h5wasm/node'

const EPS = 1e-3
const SIZE = 224
const WIDTHS = [64, 128, 128, 256, 256, 512, 512, 512, 512, 512, 512, 1024, 1024]
const STRIDE2 = [2, 4, 6, 12]

export type ReferenceWeights = Map<string, Float64Array>

type H5Group = InstanceType<typeof h5wasm.Group>
type H5Dataset = InstanceType<typeof h5wasm.Dataset>

/** Every dataset under `group`, keyed by its last two path parts (`<layer>/<param>:0`). */
function datasetsByLayer(group: H5Group, found = new Map<string, H5Dataset[]>()): Map<string, H5Dataset[]> {
  for (const key of group.keys()) {
    const child = group.get(key)
    if (child instanceof h5wasm.Group) datasetsByLayer(child, found)
    else if (child instanceof h5wasm.Dataset) {
      const parts = child.path.split('/')
      const tail = parts.slice(-2).join('/')
      found.set(tail, [...(found.get(tail) ?? []), child])
    }
  }
  return found
}

/**
 * Reads the network's tensors from a Keras HDF5, whichever way it was saved: flat
 * `save_weights` (`conv1/conv1/kernel:0`), a full `model.save` (the same under
 * model_weights/), or a base model nested in one group (`model_1/conv1/kernel:0`). The head
 * is the one layer outside the MobileNet table with a [1024, bins] kernel, whatever its name.
 */
export async function loadReferenceWeights(path: string): Promise<ReferenceWeights> {
  await h5wasm.ready
  const file = new h5wasm.File(resolve(path), 'r')
  const weights: ReferenceWeights = new Map()
  try {
    const saved = file.get('model_weights')
    const datasets = datasetsByLayer(saved instanceof h5wasm.Group ? saved : file)
    const baseLayers = new Set<string>()
    const read = (layer: string, param: string, key = `${layer}/${param}`): void => {
      baseLayers.add(layer)
      const matches = datasets.get(`${layer}/${param}:0`) ?? []
      if (matches.length !== 1) throw new Error(`reference: expected one dataset ${layer}/${param}:0, found ${matches.length}`)
      weights.set(key, Float64Array.from(matches[0]!.value as Float32Array))
    }
    const bn = (layer: string): void => ['gamma', 'beta', 'moving_mean', 'moving_variance'].forEach((p) => read(layer, p))
    read('conv1', 'kernel')
    bn('conv1_bn')
    for (let b = 1; b <= 13; b++) {
      read(`conv_dw_${b}`, 'depthwise_kernel')
      bn(`conv_dw_${b}_bn`)
      read(`conv_pw_${b}`, 'kernel')
      bn(`conv_pw_${b}_bn`)
    }
    const heads = [...datasets.entries()].filter(([tail, [d]]) => {
      const [layer = '', param = ''] = tail.split('/')
      return param === 'kernel:0' && !baseLayers.has(layer) && d!.shape?.length === 2 && d!.shape[0] === 1024
    })
    if (heads.length !== 1) throw new Error(`reference: expected one [1024, bins] head kernel, found ${heads.length}`)
    const head = heads[0]![0].split('/')[0]!
    read(head, 'kernel', 'dense/kernel')
    read(head, 'bias', 'dense/bias')
  } finally {
    file.close()
  }
  return weights
}

/**
 * float64, or float32 the way a float32 runtime computes: values kept in Float32Array, so
 * each accumulation `out += v * k` is rounded to float32 once (as a fused multiply-add).
 */
export type ReferencePrecision = 'float64' | 'float32'

type Values = Float64Array | Float32Array

interface Feature {
  data: Values
  h: number
  w: number
  c: number
}

/** A zeroed buffer of the feature's precision. */
function like(x: Feature, length: number): Values {
  return x.data instanceof Float32Array ? new Float32Array(length) : new Float64Array(length)
}

const identity = (v: number): number => v

function get(weights: ReferenceWeights, name: string): Float64Array {
  const value = weights.get(name)
  if (value === undefined) throw new Error(`reference: missing ${name}`)
  return value
}

function zeroPad(x: Feature, top: number, bottom: number, left: number, right: number): Feature {
  const h = x.h + top + bottom
  const w = x.w + left + right
  const data = like(x, h * w * x.c)
  for (let y = 0; y < x.h; y++) {
    const from = y * x.w * x.c
    data.set(x.data.subarray(from, from + x.w * x.c), ((y + top) * w + left) * x.c)
  }
  return { data, h, w, c: x.c }
}

/**
 * Which Keras built the MobileNet. 'keras-2.2' (Keras >= 2.2.1; also TF 'same'): stride 2
 * → ZeroPadding2D(((0,1),(0,1))) + valid, stride-1 3x3 → same. 'keras-2.1.6' (Keras
 * 2.1.5 to 2.2.0): ZeroPadding2D((1, 1)) + valid before every 3x3 conv.
 */
export type KerasMobileNet = 'keras-2.2' | 'keras-2.1.6'

function kerasPad(x: Feature, stride: number, keras: KerasMobileNet): Feature {
  if (keras === 'keras-2.1.6') return zeroPad(x, 1, 1, 1, 1)
  return stride === 2 ? zeroPad(x, 0, 1, 0, 1) : zeroPad(x, 1, 1, 1, 1)
}

/** 3x3 'valid' conv, kernel HWIO. */
function conv3x3(x: Feature, kernel: Values, cout: number, stride: number): Feature {
  const h = Math.floor((x.h - 3) / stride) + 1
  const w = Math.floor((x.w - 3) / stride) + 1
  const out = like(x, h * w * cout)
  for (let oy = 0; oy < h; oy++)
    for (let ox = 0; ox < w; ox++) {
      const o = (oy * w + ox) * cout
      for (let ky = 0; ky < 3; ky++)
        for (let kx = 0; kx < 3; kx++) {
          const i = ((oy * stride + ky) * x.w + ox * stride + kx) * x.c
          for (let ci = 0; ci < x.c; ci++) {
            const v = x.data[i + ci]!
            const k = ((ky * 3 + kx) * x.c + ci) * cout
            for (let co = 0; co < cout; co++) out[o + co]! += v * kernel[k + co]!
          }
        }
    }
  return { data: out, h, w, c: cout }
}

/** 3x3 'valid' depthwise conv, kernel [3, 3, C, 1]. */
function depthwise3x3(x: Feature, kernel: Values, stride: number): Feature {
  const h = Math.floor((x.h - 3) / stride) + 1
  const w = Math.floor((x.w - 3) / stride) + 1
  const c = x.c
  const out = like(x, h * w * c)
  for (let oy = 0; oy < h; oy++)
    for (let ox = 0; ox < w; ox++) {
      const o = (oy * w + ox) * c
      for (let ky = 0; ky < 3; ky++)
        for (let kx = 0; kx < 3; kx++) {
          const i = ((oy * stride + ky) * x.w + ox * stride + kx) * c
          const k = (ky * 3 + kx) * c
          for (let ch = 0; ch < c; ch++) out[o + ch]! += x.data[i + ch]! * kernel[k + ch]!
        }
    }
  return { data: out, h, w, c }
}

/** 1x1 conv, kernel [1, 1, Cin, Cout]. Skipping zero inputs is exact and halves the work after ReLU. */
function pointwise(x: Feature, kernel: Values, cout: number): Feature {
  const pixels = x.h * x.w
  const out = like(x, pixels * cout)
  for (let p = 0; p < pixels; p++) {
    const o = p * cout
    for (let ci = 0; ci < x.c; ci++) {
      const v = x.data[p * x.c + ci]!
      if (v === 0) continue
      const k = ci * cout
      for (let co = 0; co < cout; co++) out[o + co]! += v * kernel[k + co]!
    }
  }
  return { data: out, h: x.h, w: x.w, c: cout }
}

/** BatchNorm (inference: moving statistics) followed by ReLU6, in place. */
function batchNormRelu6(x: Feature, weights: ReferenceWeights, name: string): Feature {
  const gamma = get(weights, `${name}/gamma`)
  const beta = get(weights, `${name}/beta`)
  const mean = get(weights, `${name}/moving_mean`)
  const variance = get(weights, `${name}/moving_variance`)
  const { data, c } = x
  const r = data instanceof Float32Array ? Math.fround : identity
  for (let i = 0; i < data.length; i++) {
    const ch = i % c
    const y = r(r(r(gamma[ch]! * r(data[i]! - mean[ch]!)) / r(Math.sqrt(r(variance[ch]! + EPS)))) + beta[ch]!)
    data[i] = y < 0 ? 0 : y > 6 ? 6 : y
  }
  return x
}

/** Class probabilities for one 224x224x3 NHWC image already scaled to [-1, 1], computed in `precision`. */
export function referenceForward(weights: ReferenceWeights, image: ArrayLike<number>, keras: KerasMobileNet = 'keras-2.2', precision: ReferencePrecision = 'float64'): Float64Array {
  if (image.length !== SIZE * SIZE * 3) throw new Error(`reference: expected ${SIZE * SIZE * 3} values, got ${image.length}`)
  const f32 = precision === 'float32'
  const r = f32 ? Math.fround : identity
  // The weights are float32 in the file, so either copy holds them exactly.
  const w = (name: string): Values => (f32 ? Float32Array.from(get(weights, name)) : get(weights, name))
  let x: Feature = { data: f32 ? Float32Array.from(image) : Float64Array.from(image), h: SIZE, w: SIZE, c: 3 }
  x = batchNormRelu6(conv3x3(kerasPad(x, 2, keras), w('conv1/kernel'), 32, 2), weights, 'conv1_bn')
  WIDTHS.forEach((width, index) => {
    const b = index + 1
    const stride = STRIDE2.includes(b) ? 2 : 1
    x = batchNormRelu6(depthwise3x3(kerasPad(x, stride, keras), w(`conv_dw_${b}/depthwise_kernel`), stride), weights, `conv_dw_${b}_bn`)
    x = batchNormRelu6(pointwise(x, w(`conv_pw_${b}/kernel`), width), weights, `conv_pw_${b}_bn`)
  })

  const pooled = like(x, x.c)
  for (let p = 0; p < x.h * x.w; p++) for (let ch = 0; ch < x.c; ch++) pooled[ch]! += x.data[p * x.c + ch]!
  for (let ch = 0; ch < x.c; ch++) pooled[ch]! /= x.h * x.w

  const kernel = w('dense/kernel')
  const logits = f32 ? Float32Array.from(get(weights, 'dense/bias')) : Float64Array.from(get(weights, 'dense/bias'))
  for (let i = 0; i < x.c; i++) for (let j = 0; j < logits.length; j++) logits[j]! += pooled[i]! * kernel[i * logits.length + j]!
  const top = Math.max(...logits)
  const exp = Array.from(logits, (v) => r(Math.exp(r(v - top))))
  const sum = exp.reduce((a, b) => r(a + b), 0)
  return Float64Array.from(exp, (v) => r(v / sum))
}

