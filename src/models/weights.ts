import { CONV_LAYERS, EXPECTED_TENSORS, HEAD, elementCount } from './architecture.js'
import { ModelError } from './model-error.js'

/** One weight tensor in Keras layout (row-major, last axis fastest). */
export interface Tensor {
  readonly shape: readonly number[]
  readonly data: Float32Array
}

/** Canonical Keras tensor name (e.g. conv_pw_3/kernel, dense/bias) → tensor. */
export type WeightSet = ReadonlyMap<string, Tensor>

export function makeTensor(shape: readonly number[], data: Float32Array): Tensor {
  const expected = elementCount(shape)
  if (data.length !== expected) {
    throw new RangeError(`tensor data: expected ${expected} values for shape ${formatShape(shape)}, got ${data.length}`)
  }
  return { shape: [...shape], data }
}

export function formatShape(shape: readonly number[] | undefined): string {
  return shape === undefined ? '(none)' : `[${shape.join(',')}]`
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i])
}

/**
 * Every way `weights` differs from the expected table, one line each. Values are checked
 * too: a NaN or a negative variance would only show up later as NaN scores.
 */
export function weightProblems(
  weights: WeightSet,
  expected: ReadonlyMap<string, readonly number[]> = EXPECTED_TENSORS,
): string[] {
  const problems: string[] = []
  for (const [name, shape] of expected) {
    const tensor = weights.get(name)
    if (tensor === undefined) {
      problems.push(`missing ${name}: expected shape ${formatShape(shape)}`)
    } else if (!sameShape(tensor.shape, shape) || tensor.data.length !== elementCount(shape)) {
      problems.push(`mis-shaped ${name}: expected shape ${formatShape(shape)}, got ${formatShape(tensor.shape)}`)
    } else {
      const bad = tensor.data.findIndex((v) => !Number.isFinite(v))
      if (bad >= 0) problems.push(`bad values in ${name}: expected finite numbers, got ${tensor.data[bad]} at index ${bad}`)
      else if (name.endsWith('/moving_variance')) {
        const negative = tensor.data.findIndex((v) => v < 0)
        if (negative >= 0) {
          problems.push(`bad values in ${name}: expected variances >= 0, got ${tensor.data[negative]} at index ${negative}`)
        }
      }
    }
  }
  for (const [name, tensor] of weights) {
    if (!expected.has(name)) problems.push(`unexpected ${name}: shape ${formatShape(tensor.shape)} is not part of MobileNet v1`)
  }
  return problems
}

// Layer names Keras gives MobileNetV2 (and V3) but never v1.
const MOBILENET_V2_LAYER = /^(Conv1|bn_Conv1|Conv_1|Conv_1_bn|expanded_conv(_\d+)?_\w+|block_\d+_\w+)$/

/**
 * What the weights look like as a whole, next to what NIMA MobileNet v1 needs, so a user who
 * picked the wrong file reads "MobileNetV2" or "alpha 0.5" before the per-tensor list.
 * Empty when nothing but details differ.
 */
export function architectureFindings(weights: WeightSet): string[] {
  const findings: string[] = []
  const layers = [...new Set([...weights.keys()].map((name) => name.split('/')[0] ?? ''))]
  const v2 = layers.filter((layer) => MOBILENET_V2_LAYER.test(layer))
  if (v2.length > 0) {
    findings.push(`found MobileNetV2-style layers (${v2.slice(0, 3).join(', ')}${v2.length > 3 ? ', ...' : ''}); expected MobileNet v1 layers conv1, conv_dw_1..13, conv_pw_1..13`)
  }
  const first = CONV_LAYERS[0]!
  const conv1 = weights.get(first.kernelTensor)?.shape
  if (conv1?.length === 4 && conv1[3] !== first.outChannels) {
    findings.push(`found ${first.name} with ${conv1[3]} filters, i.e. MobileNet v1 alpha ${(conv1[3]! / first.outChannels).toString()}; expected ${first.outChannels} filters (alpha 1.0)`)
  }
  const head = weights.get(HEAD.kernel)?.shape
  if (head?.length === 2 && head[1] !== HEAD.outputs) findings.push(`found a head with ${head[1]} bins; expected ${HEAD.outputs} (scores 1 to 10)`)
  if (head?.length === 2 && head[0] !== HEAD.inputs) findings.push(`found a head over ${head[0]} features; expected ${HEAD.inputs} (global average pooling of the last conv)`)
  return findings
}

// A MobileNetV2 file misses all 137 tensors; the first ones make the point.
const LISTED_PROBLEMS = 20

/** Throws one MODEL_WEIGHTS_INVALID error that lists every problem (up to 20), not just the first. */
export function validateWeights(weights: WeightSet, source: string): void {
  const problems = weightProblems(weights)
  if (problems.length === 0) return
  const noun = problems.length === 1 ? 'problem' : 'problems'
  const listed = problems.length > LISTED_PROBLEMS ? [...problems.slice(0, LISTED_PROBLEMS), `... and ${problems.length - LISTED_PROBLEMS} more`] : problems
  const lines = [...architectureFindings(weights), ...listed]
  throw new ModelError(
    'MODEL_WEIGHTS_INVALID',
    `weights from ${source} do not match NIMA MobileNet v1 (alpha 1.0, 224x224 input, Dense(10) head), ${problems.length} ${noun}:\n  ${lines.join('\n  ')}`,
  )
}

/** The tensor, for code that has already validated the set. */
export function requireTensor(weights: WeightSet, name: string): Tensor {
  const tensor = weights.get(name)
  if (tensor === undefined) throw new ModelError('MODEL_WEIGHTS_INVALID', `missing tensor ${name}`)
  return tensor
}
