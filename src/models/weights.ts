import { EXPECTED_TENSORS, elementCount } from './architecture.js'
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

/** Throws one MODEL_WEIGHTS_INVALID error that lists every problem, not just the first. */
export function validateWeights(weights: WeightSet, source: string): void {
  const problems = weightProblems(weights)
  if (problems.length === 0) return
  const noun = problems.length === 1 ? 'problem' : 'problems'
  throw new ModelError(
    'MODEL_WEIGHTS_INVALID',
    `weights from ${source} do not match NIMA MobileNet v1 (alpha 1.0), ${problems.length} ${noun}:\n  ${problems.join('\n  ')}`,
  )
}

/** The tensor, for code that has already validated the set. */
export function requireTensor(weights: WeightSet, name: string): Tensor {
  const tensor = weights.get(name)
  if (tensor === undefined) throw new ModelError('MODEL_WEIGHTS_INVALID', `missing tensor ${name}`)
  return tensor
}
