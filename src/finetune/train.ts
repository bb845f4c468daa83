import { mulberry32, type Rng } from '../util/prng.js'
import { cloneHead, headLogits, headPredict, type Head } from './head.js'
import { emd, emdWithGradient } from './math.js'

/**
 * Trains a new Dense + softmax head on fixed backbone features with the EMD loss (r = 2):
 * mini-batch Adam, decoupled weight decay on the kernel (AdamW; the bias is not decayed),
 * early stopping on a validation set with patience, best weights restored. Everything is
 * float64 and every random choice comes from one seeded PRNG, so a run is reproducible.
 *
 * Optimisation runs on standardised features z = (x − μ) / s (training-set statistics),
 * with the head reparameterised exactly: W' = diag(s)·W, b' = b + μ·W, so the starting
 * point is the base head and the result converts back to a plain Dense head on x. Pooled
 * MobileNet features vary by a few percent of their mean across photos; without this, Adam's
 * step (≈ lr per weight) is far too small for some features and far too large for others.
 */
export interface Sample {
  /** The backbone's pooled features (1024 values). */
  features: ArrayLike<number>
  /** Target distribution over the 10 bins. */
  target: ArrayLike<number>
}

export interface TrainOptions {
  epochs: number
  learningRate: number
  /** Decoupled weight decay per step, as a fraction of lr (AdamW): W ← W − lr·λ·W. */
  weightDecay: number
  batchSize: number
  /** Epochs without a validation improvement before stopping. */
  patience: number
  seed: number
  beta1?: number
  beta2?: number
  epsilon?: number
  /** Smallest decrease of validation EMD that counts as an improvement. */
  minDelta?: number
  /** Optimise on standardised features (default true); the returned head always reads raw features. */
  standardize?: boolean
  onEpoch?: (log: EpochLog) => void
}

export const DEFAULT_TRAIN_OPTIONS: Readonly<Omit<TrainOptions, 'onEpoch'>> = Object.freeze({
  epochs: 200,
  learningRate: 1e-3,
  weightDecay: 1e-2,
  batchSize: 32,
  patience: 20,
  seed: 1,
  beta1: 0.9,
  beta2: 0.999,
  // Keras' Adam default, as idealo trained with.
  epsilon: 1e-7,
  minDelta: 1e-6,
  standardize: true,
})

export interface EpochLog {
  epoch: number
  trainEmd: number
  /** NaN when there is no validation set. */
  valEmd: number
}

export interface TrainResult {
  head: Head
  history: EpochLog[]
  /** Epoch whose weights were kept (0: the starting head was never beaten). */
  bestEpoch: number
  bestValEmd: number
  stoppedEarly: boolean
}

/** Mean EMD of a head over samples. */
export function meanEmd(head: Head, samples: readonly Sample[]): number {
  if (samples.length === 0) return NaN
  let s = 0
  for (const x of samples) s += emd(headPredict(head, x.features), x.target)
  return s / samples.length
}

/**
 * Mean EMD over `indices` of `samples` and its gradient with respect to the kernel and bias,
 * written into gradKernel/gradBias (overwritten). Chain rule: ∂L/∂W[i][j] = mean_n x_n[i]·∂L_n/∂z_n[j].
 */
export function batchLossAndGradient(
  head: Head,
  samples: readonly Sample[],
  indices: ArrayLike<number>,
  gradKernel: Float64Array,
  gradBias: Float64Array,
): number {
  const { inputs, outputs } = head
  gradKernel.fill(0)
  gradBias.fill(0)
  const logits = new Float64Array(outputs)
  const dz = new Float64Array(outputs)
  let loss = 0
  const n = indices.length
  for (let b = 0; b < n; b++) {
    const sample = samples[indices[b]!]!
    const x = sample.features
    headLogits(head, x, logits)
    loss += emdWithGradient(logits, sample.target, dz).loss
    for (let j = 0; j < outputs; j++) gradBias[j]! += dz[j]!
    for (let i = 0; i < inputs; i++) {
      const xi = x[i]!
      if (xi === 0) continue
      const row = i * outputs
      for (let j = 0; j < outputs; j++) gradKernel[row + j]! += xi * dz[j]!
    }
  }
  for (let k = 0; k < gradKernel.length; k++) gradKernel[k]! /= n
  for (let j = 0; j < outputs; j++) gradBias[j]! /= n
  return loss / n
}

/** Fisher–Yates shuffle of 0..n-1 driven by the seeded PRNG. */
export function shuffledIndices(n: number, rng: Rng): Uint32Array {
  const idx = new Uint32Array(n)
  for (let i = 0; i < n; i++) idx[i] = i
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor(rng.next() * (i + 1))
    const t = idx[i]!
    idx[i] = idx[j]!
    idx[j] = t
  }
  return idx
}

function check(name: string, value: number, ok: boolean, expected: string): void {
  if (!ok) throw new RangeError(`${name}: expected ${expected}, got ${value}`)
}

export function validateTrainOptions(o: TrainOptions): void {
  check('epochs', o.epochs, Number.isInteger(o.epochs) && o.epochs >= 0, 'an integer >= 0')
  check('learningRate', o.learningRate, o.learningRate > 0 && Number.isFinite(o.learningRate), 'a positive number')
  check('weightDecay', o.weightDecay, o.weightDecay >= 0 && Number.isFinite(o.weightDecay), 'a number >= 0')
  check('batchSize', o.batchSize, Number.isInteger(o.batchSize) && o.batchSize >= 1, 'an integer >= 1')
  check('patience', o.patience, Number.isInteger(o.patience) && o.patience >= 1, 'an integer >= 1')
  check('seed', o.seed, Number.isInteger(o.seed) && o.seed >= 0 && o.seed <= 0xffffffff, 'an integer from 0 to 4294967295')
}

type ResolvedOptions = Required<Omit<TrainOptions, 'onEpoch'>> & Pick<TrainOptions, 'onEpoch'>

class Adam {
  readonly #m: Float64Array
  readonly #v: Float64Array
  #t = 0
  constructor(
    size: number,
    readonly lr: number,
    readonly beta1: number,
    readonly beta2: number,
    readonly epsilon: number,
  ) {
    this.#m = new Float64Array(size)
    this.#v = new Float64Array(size)
  }

  /** One step on `param` (in place); `decay` is the decoupled weight decay factor. */
  step(param: Float64Array, grad: Float64Array, decay: number): void {
    this.#t++
    const { beta1, beta2, epsilon, lr } = this
    const c1 = 1 - beta1 ** this.#t
    const c2 = 1 - beta2 ** this.#t
    const m = this.#m
    const v = this.#v
    for (let k = 0; k < param.length; k++) {
      const g = grad[k]!
      m[k] = beta1 * m[k]! + (1 - beta1) * g
      v[k] = beta2 * v[k]! + (1 - beta2) * g * g
      const update = m[k]! / c1 / (Math.sqrt(v[k]! / c2) + epsilon)
      param[k] = param[k]! - lr * (update + decay * param[k]!)
    }
  }
}

/** Per-feature mean and standard deviation over samples; s = 0 marks a constant feature. */
export interface FeatureStats {
  mean: Float64Array
  std: Float64Array
}

/** Features whose spread is below this are treated as constant (left out of the optimisation). */
export const MIN_FEATURE_STD = 1e-6

export function featureStats(samples: readonly Sample[], size: number): FeatureStats {
  const mean = new Float64Array(size)
  const std = new Float64Array(size)
  for (const s of samples) for (let i = 0; i < size; i++) mean[i]! += s.features[i]!
  for (let i = 0; i < size; i++) mean[i]! /= samples.length
  for (const s of samples) for (let i = 0; i < size; i++) std[i]! += (s.features[i]! - mean[i]!) ** 2
  for (let i = 0; i < size; i++) {
    const v = Math.sqrt(std[i]! / samples.length)
    std[i] = v < MIN_FEATURE_STD ? 0 : v
  }
  return { mean, std }
}

export function standardizeSamples(samples: readonly Sample[], stats: FeatureStats): Sample[] {
  return samples.map((s) => {
    const z = new Float64Array(stats.mean.length)
    for (let i = 0; i < z.length; i++) z[i] = stats.std[i]! > 0 ? (s.features[i]! - stats.mean[i]!) / stats.std[i]! : 0
    return { features: z, target: s.target }
  })
}

/** The head on z = (x − μ)/s that equals `head` on x: W' = diag(s)·W, b' = b + μ·W. */
export function toStandardized(head: Head, stats: FeatureStats): Head {
  const out = cloneHead(head)
  const { inputs, outputs } = head
  for (let i = 0; i < inputs; i++) {
    for (let j = 0; j < outputs; j++) {
      const w = head.kernel[i * outputs + j]!
      out.kernel[i * outputs + j] = stats.std[i]! * w
      out.bias[j]! += stats.mean[i]! * w
    }
  }
  return out
}

/**
 * Back to a head on raw x: W = W' / s and b = b' − μ·W. A constant feature (s = 0) keeps the
 * starting head's weights, whose constant contribution b' already carries.
 */
export function fromStandardized(standardized: Head, stats: FeatureStats, initial: Head): Head {
  const out = cloneHead(standardized)
  const { inputs, outputs } = standardized
  for (let i = 0; i < inputs; i++) {
    for (let j = 0; j < outputs; j++) {
      const k = i * outputs + j
      const w = stats.std[i]! > 0 ? standardized.kernel[k]! / stats.std[i]! : initial.kernel[k]!
      out.kernel[k] = w
      out.bias[j]! -= stats.mean[i]! * w
    }
  }
  return out
}

export function trainHead(initial: Head, train: readonly Sample[], val: readonly Sample[], options: TrainOptions): TrainResult {
  const o: ResolvedOptions = { ...(DEFAULT_TRAIN_OPTIONS as Required<Omit<TrainOptions, 'onEpoch'>>), ...options }
  validateTrainOptions(o)
  if (train.length === 0) throw new RangeError('nothing to train on: 0 training samples')
  if (!o.standardize) return optimize(initial, train, val, o)
  const stats = featureStats(train, initial.inputs)
  const result = optimize(toStandardized(initial, stats), standardizeSamples(train, stats), standardizeSamples(val, stats), o)
  return { ...result, head: fromStandardized(result.head, stats, initial) }
}

function optimize(initial: Head, train: readonly Sample[], val: readonly Sample[], o: ResolvedOptions): TrainResult {
  const rng = mulberry32(o.seed)
  const head = cloneHead(initial)
  const adamKernel = new Adam(head.kernel.length, o.learningRate, o.beta1, o.beta2, o.epsilon)
  const adamBias = new Adam(head.bias.length, o.learningRate, o.beta1, o.beta2, o.epsilon)
  const gradKernel = new Float64Array(head.kernel.length)
  const gradBias = new Float64Array(head.bias.length)

  const hasVal = val.length > 0
  let best = cloneHead(head)
  let bestValEmd = hasVal ? meanEmd(head, val) : NaN
  let bestEpoch = 0
  let waited = 0
  let stoppedEarly = false
  const history: EpochLog[] = [{ epoch: 0, trainEmd: meanEmd(head, train), valEmd: bestValEmd }]
  o.onEpoch?.(history[0]!)

  for (let epoch = 1; epoch <= o.epochs; epoch++) {
    const order = shuffledIndices(train.length, rng)
    let lossSum = 0
    for (let start = 0; start < order.length; start += o.batchSize) {
      const batch = order.subarray(start, Math.min(order.length, start + o.batchSize))
      lossSum += batchLossAndGradient(head, train, batch, gradKernel, gradBias) * batch.length
      adamKernel.step(head.kernel, gradKernel, o.weightDecay)
      adamBias.step(head.bias, gradBias, 0)
    }
    const log: EpochLog = { epoch, trainEmd: lossSum / train.length, valEmd: hasVal ? meanEmd(head, val) : NaN }
    history.push(log)
    o.onEpoch?.(log)
    if (!hasVal) continue
    if (log.valEmd < bestValEmd - o.minDelta) {
      best = cloneHead(head)
      bestValEmd = log.valEmd
      bestEpoch = epoch
      waited = 0
    } else if (++waited >= o.patience) {
      stoppedEarly = true
      break
    }
  }
  if (!hasVal) return { head, history, bestEpoch: o.epochs, bestValEmd: NaN, stoppedEarly: false }
  return { head: best, history, bestEpoch, bestValEmd, stoppedEarly }
}
