/**
 * The numerical core of fine-tuning, as pure functions over plain arrays (float64):
 * softmax, CDF, the Earth Mover's Distance loss of NIMA (r = 2) with its analytic
 * gradient with respect to the logits, and the evaluation metrics.
 *
 * NIMA's loss (Talebi & Milanfar 2018, eq. 1) with r = 2, as idealo implemented it:
 *   EMD(p, q) = sqrt( mean_k (CDF_p[k] - CDF_q[k])^2 )   over the K bins, k = 1..K
 * and the batch loss is the mean of the per-sample values.
 */

import { checkSameLength, mean, pearson, rankWithTies, spearman, std } from '../util/correlation.js'
import { meanOf } from '../scoring/distribution.js'

// The statistics below scoring's tools share (src/util/correlation.ts), still exported here for fine-tuning's callers.
export { mean, pearson, rankWithTies, spearman, std }

/** Numerically stable softmax (max subtracted first). */
export function softmax(logits: ArrayLike<number>): Float64Array {
  const n = logits.length
  const out = new Float64Array(n)
  let max = -Infinity
  for (let i = 0; i < n; i++) if (logits[i]! > max) max = logits[i]!
  let sum = 0
  for (let i = 0; i < n; i++) {
    const e = Math.exp(logits[i]! - max)
    out[i] = e
    sum += e
  }
  for (let i = 0; i < n; i++) out[i]! /= sum
  return out
}

/** Cumulative sums: CDF[k] = p[0] + … + p[k]. */
export function cdf(p: ArrayLike<number>): Float64Array {
  const out = new Float64Array(p.length)
  let acc = 0
  for (let i = 0; i < p.length; i++) {
    acc += p[i]!
    out[i] = acc
  }
  return out
}


/** EMD with r = 2 between two distributions over the same ordered bins. */
export function emd(p: ArrayLike<number>, q: ArrayLike<number>): number {
  checkSameLength(p, q)
  let cp = 0
  let cq = 0
  let s = 0
  for (let k = 0; k < p.length; k++) {
    cp += p[k]!
    cq += q[k]!
    s += (cp - cq) ** 2
  }
  return Math.sqrt(s / p.length)
}

/**
 * Per-sample EMD of softmax(logits) against target q, and its gradient with respect to the
 * logits. With d_k = CDF_p[k] - CDF_q[k], L = sqrt(Σ d_k² / K):
 *   ∂L/∂p_j = Σ_{k ≥ j} d_k / (K·L)                       (p_j enters every CDF from j on)
 *   ∂L/∂z_i = p_i · (g_i − Σ_j p_j g_j)   with g = ∂L/∂p   (softmax Jacobian)
 * At L = 0 the square root is not differentiable; the gradient is taken as 0 there (the
 * minimum).
 */
export function emdWithGradient(logits: ArrayLike<number>, q: ArrayLike<number>, gradOut?: Float64Array): { loss: number; p: Float64Array; grad: Float64Array } {
  checkSameLength(logits, q)
  const K = logits.length
  const p = softmax(logits)
  const d = new Float64Array(K)
  let cp = 0
  let cq = 0
  let s = 0
  for (let k = 0; k < K; k++) {
    cp += p[k]!
    cq += q[k]!
    d[k] = cp - cq
    s += d[k]! ** 2
  }
  const loss = Math.sqrt(s / K)
  const grad = gradOut ?? new Float64Array(K)
  if (loss === 0) {
    grad.fill(0)
    return { loss, p, grad }
  }
  // g_j = suffix sum of d from j, scaled; then the softmax Jacobian.
  const scale = 1 / (K * loss)
  let suffix = 0
  for (let j = K - 1; j >= 0; j--) {
    suffix += d[j]!
    grad[j] = suffix * scale
  }
  let pg = 0
  for (let j = 0; j < K; j++) pg += p[j]! * grad[j]!
  for (let i = 0; i < K; i++) grad[i] = p[i]! * (grad[i]! - pg)
  return { loss, p, grad }
}

/** Fraction of samples on the same side of `threshold` (pred ≥ t exactly when label ≥ t). */
export function thresholdAccuracy(pred: ArrayLike<number>, label: ArrayLike<number>, threshold = 5): number {
  checkSameLength(pred, label)
  let hits = 0
  for (let i = 0; i < pred.length; i++) if (pred[i]! >= threshold === label[i]! >= threshold) hits++
  return hits / pred.length
}

export interface EvaluationMetrics {
  /** Number of samples. */
  n: number
  /** Mean per-sample EMD (r = 2) between predicted and label distributions. */
  emd: number
  /** Pearson correlation of predicted and label means. */
  lcc: number
  /** Spearman correlation of predicted and label means (ties averaged). */
  srcc: number
  /** Binary accuracy of mean ≥ 5 (the AVA convention). */
  accuracy: number
  /** Standard deviation of the predicted means: how much of the 1..10 scale the model uses. */
  predStd: number
  /** Standard deviation of the label means, for comparison. */
  labelStd: number
  /** Mean absolute error of the means. */
  mae: number
}

/** Every metric for predicted vs label distributions (rows of equal length). */
export function evaluate(pred: readonly ArrayLike<number>[], label: readonly ArrayLike<number>[], threshold = 5): EvaluationMetrics {
  if (pred.length !== label.length) throw new RangeError(`${pred.length} predictions for ${label.length} labels`)
  if (pred.length === 0) throw new RangeError('nothing to evaluate: 0 samples')
  const pm = pred.map((p) => meanOf(p))
  const lm = label.map((q) => meanOf(q))
  let e = 0
  let ae = 0
  for (let i = 0; i < pred.length; i++) {
    e += emd(pred[i]!, label[i]!)
    ae += Math.abs(pm[i]! - lm[i]!)
  }
  return {
    n: pred.length,
    emd: e / pred.length,
    lcc: pearson(pm, lm),
    srcc: spearman(pm, lm),
    accuracy: thresholdAccuracy(pm, lm, threshold),
    predStd: std(pm),
    labelStd: std(lm),
    mae: ae / pred.length,
  }
}
