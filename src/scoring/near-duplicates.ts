/**
 * Near-duplicate grouping by perceptual hash (src/imaging/phash.ts): the same picture
 * resized, recompressed, slightly cropped or watermarked by another supplier.
 *
 * The distance is nearDuplicateDistance: whole frames, and each whole frame against the
 * other's corner crops where an image has them.
 *
 * Leader clustering in rank order: walking the images best first, each joins the first
 * better-ranked leader within `maxDistance` bits, else leads a group of its own. So a
 * group's leader is its best-scoring member, every member is within `maxDistance` of the
 * leader (no chains A~B~C pulling in a C far from A), and the same inputs always group
 * the same way. The default threshold comes from the variant-set sweep in
 * docs/near-duplicates.md (bench/near-duplicates.ts).
 */
import { nearDuplicateDistance, type ImageHashes } from '../imaging/phash.js'

/** Hamming distance (of 64 bits) at or below which two images are one picture. */
export const DEFAULT_MAX_DISTANCE = 14

export interface NearDuplicateMember {
  /** Position in the input list. */
  index: number
  /** Hamming distance to the leader's hash. */
  distance: number
}

export interface NearDuplicateGroup {
  leader: number
  members: NearDuplicateMember[]
}

/**
 * Groups `hashes` (given best first; undefined or without a whole-frame hash: never
 * grouped) into leaders and their members. Groups come out in leader order, members in
 * input order.
 */
export function groupNearDuplicates(hashes: readonly (ImageHashes | undefined)[], maxDistance: number): NearDuplicateGroup[] {
  if (!Number.isInteger(maxDistance) || maxDistance < 0 || maxDistance > 64) {
    throw new RangeError(`groupNearDuplicates: maxDistance must be an integer 0..64, got ${maxDistance}`)
  }
  const groups: NearDuplicateGroup[] = []
  hashes.forEach((hash, index) => {
    if (hash !== undefined) {
      for (const g of groups) {
        const lead = hashes[g.leader]
        if (lead === undefined) continue
        const distance = nearDuplicateDistance(hash, lead)
        if (distance !== undefined && distance <= maxDistance) {
          g.members.push({ index, distance })
          return
        }
      }
    }
    groups.push({ leader: index, members: [] })
  })
  return groups
}
