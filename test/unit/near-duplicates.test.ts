import t from 'tap'
import { hashSimilarity, nearDuplicateDistance } from '../../src/imaging/phash.js'
import { relevance, selectMmr } from '../../src/scoring/diversity.js'
import { groupNearDuplicates } from '../../src/scoring/near-duplicates.js'
import { rankImages, type RankEntry } from '../../src/scoring/ranking.js'

/** A hash with the lowest `bits` bits flipped from `base`. */
const flip = (base: bigint, bits: number): string => (base ^ ((1n << BigInt(bits)) - 1n)).toString(16).padStart(16, '0')
const A = 0x0123456789abcdefn
const B = ~A & 0xffffffffffffffffn // 64 bits from A

t.test('groupNearDuplicates: leaders in order, members within the threshold of the leader, no chaining', async (t) => {
  // 0 and 1 differ by 6 bits; 2 is 12 from 0 but only 6 from 1: with threshold 8 it must not chain onto 0.
  const h0 = flip(A, 0)
  const h1 = flip(A, 6)
  const h2 = flip(A, 12)
  const groups = groupNearDuplicates([h0, h1, h2, flip(B, 0), undefined, flip(B, 3)].map((phash) => (phash === undefined ? undefined : { phash })), 8)
  t.same(groups, [
    { leader: 0, members: [{ index: 1, distance: 6 }] },
    { leader: 2, members: [] },
    { leader: 3, members: [{ index: 5, distance: 3 }] },
    { leader: 4, members: [] },
  ])
  t.same(groupNearDuplicates([{ phash: h0 }, { phash: h1 }], 5), [{ leader: 0, members: [] }, { leader: 1, members: [] }], 'above the threshold: apart')
  t.same(groupNearDuplicates([{ phash: h0 }, { phash: h1 }], 6)[0]!.members, [{ index: 1, distance: 6 }], 'at the threshold: together')
  t.same(groupNearDuplicates([{ phash: h0 }, { phashCrops: [h0, h0, h0, h0] }], 64)[1], { leader: 1, members: [] }, 'no whole-frame hash: never grouped')
  t.throws(() => groupNearDuplicates([{ phash: h0 }], 65), RangeError)
  t.throws(() => groupNearDuplicates([{ phash: h0 }], 2.5), RangeError)
})

t.test('nearDuplicateDistance: whole frames, and each whole frame against the other\'s corner crops', async (t) => {
  const far = flip(B, 0)
  const crops = (i: number, h: string) => [far, far, far, far].map((c, j) => (j === i ? h : c))
  // A cropped copy: its whole frame is far from the original's, but near one of the original's corner crops.
  const original = { phash: flip(A, 0), phashCrops: crops(3, flip(A, 3)) }
  const cropped = { phash: flip(A, 5), phashCrops: crops(0, far) }
  t.equal(nearDuplicateDistance({ phash: flip(A, 30) }, { phash: flip(A, 0) }), 30, 'without crops: the whole-frame distance')
  t.equal(nearDuplicateDistance({ phash: flip(A, 30) }, original), 27, 'whole frame against the other\'s crop (flip(A,30) vs flip(A,3))')
  t.equal(nearDuplicateDistance(original, { phash: flip(A, 30) }), 27, 'symmetric')
  t.equal(nearDuplicateDistance(cropped, original), 2, 'the nearest of the nine comparisons')
  const x = '00000000ffffffff' // 32 bits from both whole frames below
  t.equal(
    nearDuplicateDistance({ phash: '0000000000000000', phashCrops: [x, x, x, x] }, { phash: 'ffffffffffffffff', phashCrops: [x, x, x, x] }),
    32,
    'crops are not compared with crops (theirs are identical here)',
  )
  t.equal(nearDuplicateDistance({ phashCrops: crops(0, flip(A, 0)) }, original), undefined, 'no whole-frame hash: no distance')
  t.same(
    groupNearDuplicates([original, { phash: flip(A, 17) }, { phash: flip(A, 20), phashCrops: crops(2, flip(A, 1)) }], 14),
    [{ leader: 0, members: [{ index: 1, distance: 14 }, { index: 2, distance: 1 }] }],
    'grouping uses it: one entry reaches the leader through the leader\'s crops, one through its own',
  )
})

t.test('hashSimilarity: 1 for equal hashes, 0 from 20 bits on, 0 without a hash', async (t) => {
  const h = (bits: number, base = A) => ({ phash: flip(base, bits) })
  t.equal(hashSimilarity(h(0), h(0)), 1)
  t.equal(hashSimilarity(h(0), h(5)), 0.75)
  t.equal(hashSimilarity(h(0), h(20)), 0)
  t.equal(hashSimilarity(h(0), h(25)), 0)
  t.equal(hashSimilarity(h(0), h(0, B)), 0)
  t.equal(hashSimilarity(h(0), undefined), 0)
  t.equal(hashSimilarity(h(0), {}), 0)
  t.equal(hashSimilarity(h(0), { phash: flip(A, 25), phashCrops: [flip(A, 5), flip(B, 0), flip(B, 0), flip(B, 0)] }), 0.75, 'from the same distance as grouping')
})

t.test('relevance maps the 1..10 score scale onto 0..1', async (t) => {
  t.equal(relevance(1), 0)
  t.equal(relevance(10), 1)
  t.equal(relevance(5.5), 0.5)
  t.equal(relevance(12), 1)
})

t.test('selectMmr: diversity 0 is the plain order; a near-copy of a pick loses to a different photo', async (t) => {
  const rel = [0.9, 0.89, 0.88, 0.7]
  const sim = (i: number, j: number) => (i < 3 && j < 3 ? 0.95 : 0)
  t.same(selectMmr(rel, sim, 3, 0), [0, 1, 2])
  t.same(selectMmr(rel, sim, 3, 0.3), [0, 3, 1], 'after the best of the three look-alikes, the different photo')
  t.same(selectMmr(rel, sim, 10, 0.3), [0, 3, 1, 2], 'k beyond the candidates: all of them')
  t.same(selectMmr([0.5, 0.5], () => 0, 2, 0.5), [0, 1], 'ties go to the better-ranked candidate')
  t.throws(() => selectMmr(rel, sim, -1, 0.3), RangeError)
  t.throws(() => selectMmr(rel, sim, 1, 1.5), RangeError)
})

const tasks = { aesthetic: 'aesthetic', technical: 'technical' }
const entry = (index: number, combined: number, phash: string | undefined, contentKey = `k${index}`): RankEntry<string> => ({
  index,
  contentKey,
  ...(phash !== undefined ? { phash } : {}),
  combined,
  means: { aesthetic: combined, technical: combined },
  tasks,
  item: `i${index}`,
})

// A gallery: three near-identical best photos (one also sent twice, byte for byte), two different ones.
const C = 0x5555aaaa3333ccccn
const gallery = [
  entry(0, 6.0, flip(A, 2)),
  entry(1, 6.2, flip(A, 0)),
  entry(2, 6.1, flip(A, 4)),
  entry(3, 5.0, flip(B, 0)),
  entry(4, 4.8, C.toString(16)),
  entry(5, 6.0, flip(A, 2), 'k0'),
]

t.test('rankImages: near-duplicates fold into the best-scoring member, with distance and similarity', async (t) => {
  const r = rankImages(gallery, { nearDuplicates: { maxDistance: 8 } })
  t.same(r.map((e) => e.item), ['i1', 'i3', 'i4'])
  t.same(r[0]!.nearDuplicates, [
    { item: 'i0', distance: 2, similarity: 1 - 2 / 20 },
    { item: 'i2', distance: 4, similarity: 1 - 4 / 20 },
    { item: 'i5', distance: 2, similarity: 1 - 2 / 20 },
  ], 'byte-identical copies of a member come along, in input order')
  t.same(r[0]!.duplicates, [])
  t.same(rankImages(gallery).map((e) => e.item), ['i1', 'i2', 'i0', 'i3', 'i4'], 'off: byte-identical folding only')
  t.same(rankImages(gallery)[2]!.duplicates, ['i5'])
  t.ok(rankImages(gallery).every((e) => e.nearDuplicates.length === 0))
})

t.test('rankImages select: three near-identical best photos do not fill the top three', async (t) => {
  const plain = rankImages(gallery).map((e) => e.item)
  t.same(plain.slice(0, 3), ['i1', 'i2', 'i0'], 'without select they would')
  const diverse = rankImages(gallery, { select: { k: 3, diversity: 0.3 } })
  t.same(diverse.map((e) => e.item), ['i1', 'i3', 'i4', 'i2', 'i0'], 'the picks first, the rest by score')
  t.same(diverse.map((e) => e.rank), [1, 2, 3, 4, 5])
  t.same(diverse.map((e) => e.selected), [true, true, true, false, false], 'the k picks are marked')
  t.ok(rankImages(gallery).every((e) => e.selected === undefined), 'no mark without select')
  t.same(rankImages(gallery, { select: { k: 10, diversity: 0.3 } }).map((e) => e.selected), [true, true, true, true, true], 'k beyond the entries: every one picked')
  t.same(rankImages(gallery, { select: { k: 3, diversity: 0 } }).map((e) => e.item), plain, 'diversity 0: the plain ranking')
  const both = rankImages(gallery, { nearDuplicates: { maxDistance: 8 }, select: { k: 2, diversity: 0.3 } })
  t.same(both.map((e) => e.item), ['i1', 'i3', 'i4'], 'grouping and selection compose')
})
