/**
 * The one ranking rule of the service, used by POST /rank and by `rank-hotels`:
 * byte-identical images (same content key) are one entry, listed with their duplicates;
 * entries go best combined score first; ties break on the aesthetic mean (the model whose
 * *task* is aesthetic, so a fine-tuned `aesthetic-hotel` counts), then on input order, so
 * the same inputs always rank the same way.
 */

/** What ranking needs of one successfully scored input. */
export interface RankEntry<T> {
  /** Input position: the last tie-break, and the order of duplicates. */
  index: number
  /** Content identity (the sha256 of the bytes): equal keys are one image. */
  contentKey: string
  combined: number
  /** Mean score by model id. */
  means: Readonly<Record<string, number>>
  /** Task by model id ('aesthetic', 'technical'). */
  tasks: Readonly<Record<string, string>>
  item: T
}

export interface RankedEntry<T> {
  /** 1 = best. */
  rank: number
  /** The first input with this content. */
  item: T
  /** Later inputs with identical content, in input order. */
  duplicates: T[]
}

/** The mean of the first model whose task is aesthetic; 0 when none scored the image. */
export function aestheticMean(means: Readonly<Record<string, number>>, tasks: Readonly<Record<string, string>>): number {
  for (const [id, mean] of Object.entries(means)) if (tasks[id] === 'aesthetic') return mean
  return 0
}

export function rankImages<T>(entries: readonly RankEntry<T>[]): RankedEntry<T>[] {
  const groups = [...groupByKey([...entries].sort((a, b) => a.index - b.index), (e) => e.contentKey).values()]
  const heads = groups.map((g) => ({ head: g[0]!, rest: g.slice(1), tieBreak: aestheticMean(g[0]!.means, g[0]!.tasks) }))
  heads.sort((a, b) => b.head.combined - a.head.combined || b.tieBreak - a.tieBreak || a.head.index - b.head.index)
  return heads.map(({ head, rest }, i) => ({ rank: i + 1, item: head.item, duplicates: rest.map((d) => d.item) }))
}

/** Groups items by key, keeping first-seen order of groups and of members. */
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
