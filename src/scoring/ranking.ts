/**
 * Ranking: best combined score first. Ties break on the aesthetic mean, then on input
 * order, so the same inputs always rank the same way.
 */
export interface Rankable {
  index: number
  combined: number
  tieBreak?: number
}

export function rankOrder<T extends Rankable>(items: readonly T[]): T[] {
  return [...items].sort(
    (a, b) => b.combined - a.combined || (b.tieBreak ?? 0) - (a.tieBreak ?? 0) || a.index - b.index,
  )
}

/**
 * Groups inputs by content identity, keeping first-seen order: byte-identical images are
 * scored once and listed together.
 */
export function groupByKey<T>(items: readonly T[], key: (item: T) => string): Map<string, T[]> {
  const groups = new Map<string, T[]>()
  for (const item of items) {
    const k = key(item)
    const g = groups.get(k)
    if (g) g.push(item)
    else groups.set(k, [item])
  }
  return groups
}
