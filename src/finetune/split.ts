import { createHash } from 'node:crypto'

/**
 * Deterministic train / validation / test split by group. Images of one group (a hotel, a
 * source photo and its edited variants) always land in the same part, so near-duplicates
 * never straddle the training and the test data. A group's place depends only on the seed
 * and its own key (its rank by sha256(seed:key)), not on the order the labels arrived in.
 */
export interface SplitOptions {
  /** Fraction of the groups held out for the final test. */
  testFraction: number
  /** Fraction of the remaining (non-test) groups used for early stopping. */
  valFraction: number
  seed: number
}

export interface Split<T> {
  train: T[]
  val: T[]
  test: T[]
}

function checkFraction(name: string, value: number): void {
  if (!(value >= 0 && value < 1)) throw new RangeError(`${name}: expected a number from 0 to below 1, got ${value}`)
}

/** How many of n groups a fraction takes: rounded, and at least one when the fraction is > 0 and n allows it. */
function take(n: number, fraction: number): number {
  if (fraction === 0 || n < 2) return 0
  return Math.min(n - 1, Math.max(1, Math.round(n * fraction)))
}

export function splitByGroup<T>(items: readonly T[], groupOf: (item: T) => string, options: SplitOptions): Split<T> {
  checkFraction('testFraction', options.testFraction)
  checkFraction('valFraction', options.valFraction)
  const groups = [...new Set(items.map(groupOf))]
  const key = (g: string) => createHash('sha256').update(`${options.seed}:${g}`).digest('hex')
  const keyed = groups.map((g) => ({ g, k: key(g) })).sort((a, b) => (a.k < b.k ? -1 : a.k > b.k ? 1 : 0))
  const nTest = take(keyed.length, options.testFraction)
  const nVal = take(keyed.length - nTest, options.valFraction)
  const part = new Map<string, keyof Split<T>>()
  keyed.forEach(({ g }, i) => part.set(g, i < nTest ? 'test' : i < nTest + nVal ? 'val' : 'train'))
  const out: Split<T> = { train: [], val: [], test: [] }
  for (const item of items) out[part.get(groupOf(item))!].push(item)
  return out
}
