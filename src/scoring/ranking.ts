/**
 * The one ranking rule of the service, used by POST /rank and by `rank-hotels`:
 * byte-identical images (same content key) are one entry, listed with their duplicates;
 * with `nearDuplicates`, images whose perceptual hashes are within `maxDistance` bits are
 * one entry too, led by the best-scoring of them (src/scoring/near-duplicates.ts);
 * entries go best combined score first; ties break on the aesthetic mean (the model whose
 * *task* is aesthetic, so a fine-tuned `aesthetic-hotel` counts), then on input order, so
 * the same inputs always rank the same way. With `select`, the first k entries are instead
 * picked by maximal marginal relevance (src/scoring/diversity.ts), the rest follow by score.
 */
import { hashSimilarity } from '../imaging/phash.js'
import { DEFAULT_DIVERSITY, relevance, selectMmr } from './diversity.js'
import { DEFAULT_MAX_DISTANCE, groupNearDuplicates } from './near-duplicates.js'

/** What ranking needs of one successfully scored input. */
export interface RankEntry<T> {
  /** Input position: the last tie-break, and the order of duplicates. */
  index: number
  /** Content identity (the sha256 of the bytes): equal keys are one image. */
  contentKey: string
  /** Perceptual hash (src/imaging/phash.ts); without one an image is never a near-duplicate. */
  phash?: string
  /** Corner-crop hashes (src/imaging/phash.ts); without them the whole-frame hash alone decides. */
  phashCrops?: readonly string[]
  combined: number
  /** Mean score by model id. */
  means: Readonly<Record<string, number>>
  /** Task by model id ('aesthetic', 'technical'). */
  tasks: Readonly<Record<string, string>>
  item: T
}

export interface RankOptions {
  /** Fold images within `maxDistance` bits of a better one into its entry; absent: byte-identical only. */
  nearDuplicates?: { maxDistance: number }
  /** The first `k` entries by maximal marginal relevance with this `diversity` (0..1). */
  select?: { k: number; diversity: number }
}

/** Ranking options as a caller states them (POST /rank body, rank-hotels flags); every field optional. */
export interface RequestedRankOptions {
  nearDuplicates?: { enabled?: boolean; maxDistance?: number }
  select?: { k: number; diversity?: number }
}

/**
 * The defaults filled in: near-duplicate grouping on at DEFAULT_MAX_DISTANCE, selection
 * only when asked for, at DEFAULT_DIVERSITY.
 */
export function resolveRankOptions(requested: RequestedRankOptions = {}): RankOptions {
  const near = requested.nearDuplicates
  return {
    ...(near?.enabled !== false ? { nearDuplicates: { maxDistance: near?.maxDistance ?? DEFAULT_MAX_DISTANCE } } : {}),
    ...(requested.select ? { select: { k: requested.select.k, diversity: requested.select.diversity ?? DEFAULT_DIVERSITY } } : {}),
  }
}

export interface NearDuplicate<T> {
  item: T
  /** nearDuplicateDistance between it and the leader (0..64). */
  distance: number
  /** hashSimilarity of the two images (0..1). */
  similarity: number
}

export interface RankedEntry<T> {
  /** 1 = best. */
  rank: number
  /** With `select`: true for the k entries it picked (ranks 1..k), false for the rest; absent without it. */
  selected?: boolean
  /** The first input with this content. */
  item: T
  /** Later inputs with identical content, in input order. */
  duplicates: T[]
  /** Inputs folded in as near-duplicates (their byte-identical copies too), in input order. */
  nearDuplicates: NearDuplicate<T>[]
}

/** The mean of the first model whose task is aesthetic; 0 when none scored the image. */
export function aestheticMean(means: Readonly<Record<string, number>>, tasks: Readonly<Record<string, string>>): number {
  for (const [id, mean] of Object.entries(means)) if (tasks[id] === 'aesthetic') return mean
  return 0
}

export function rankImages<T>(entries: readonly RankEntry<T>[], options: RankOptions = {}): RankedEntry<T>[] {
  const groups = [...groupByKey([...entries].sort((a, b) => a.index - b.index), (e) => e.contentKey).values()]
  const heads = groups.map((g) => ({ head: g[0]!, rest: g.slice(1), tieBreak: aestheticMean(g[0]!.means, g[0]!.tasks) }))
  heads.sort((a, b) => b.head.combined - a.head.combined || b.tieBreak - a.tieBreak || a.head.index - b.head.index)

  const near = options.nearDuplicates
    ? groupNearDuplicates(heads.map((h) => h.head), options.nearDuplicates.maxDistance)
    : heads.map((_, i) => ({ leader: i, members: [] }))
  const entriesOut = near.map(({ leader, members }) => {
    const { head, rest } = heads[leader]!
    const folded = members
      .flatMap(({ index, distance }) => {
        const m = heads[index]!
        const similarity = hashSimilarity(m.head, head)
        return [m.head, ...m.rest].map((e) => ({ index: e.index, near: { item: e.item, distance, similarity } }))
      })
      .sort((a, b) => a.index - b.index)
    return { head, duplicates: rest.map((d) => d.item), nearDuplicates: folded.map((f) => f.near) }
  })

  let order = entriesOut
  let picks = 0
  if (options.select) {
    const { k, diversity } = options.select
    const chosen = selectMmr(
      entriesOut.map((e) => relevance(e.head.combined)),
      (i, j) => hashSimilarity(entriesOut[i]!.head, entriesOut[j]!.head),
      k,
      diversity,
    )
    const picked = new Set(chosen)
    picks = chosen.length
    order = [...chosen.map((i) => entriesOut[i]!), ...entriesOut.filter((_, i) => !picked.has(i))]
  }
  return order.map((e, i) => ({
    rank: i + 1,
    ...(options.select ? { selected: i < picks } : {}),
    item: e.head.item,
    duplicates: e.duplicates,
    nearDuplicates: e.nearDuplicates,
  }))
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
