import t from 'tap'
import { aestheticMean, groupByKey, rankImages, type RankEntry } from '../../src/scoring/ranking.js'

const tasks = { 'aesthetic-hotel': 'aesthetic', technical: 'technical' }
const entry = (index: number, combined: number, aesthetic: number, contentKey = `k${index}`): RankEntry<string> => ({
  index,
  contentKey,
  combined,
  means: { 'aesthetic-hotel': aesthetic, technical: 5 },
  tasks,
  item: `i${index}`,
})

t.test('best combined first, ties by the aesthetic-task mean, then by input order', async (t) => {
  const items = [entry(0, 5, 5), entry(1, 7, 1), entry(2, 5, 6), entry(3, 5, 6)]
  t.same(rankImages(items).map((r) => [r.rank, r.item]), [
    [1, 'i1'],
    [2, 'i2'],
    [3, 'i3'],
    [4, 'i0'],
  ])
  t.same(items.map((i) => i.index), [0, 1, 2, 3], 'input untouched')
})

t.test('the tie-break follows the task, not the id: a fine-tuned aesthetic model counts', async (t) => {
  t.equal(aestheticMean({ technical: 3, 'aesthetic-hotel': 7 }, tasks), 7)
  t.equal(aestheticMean({ technical: 3 }, tasks), 0, 'no aesthetic model scored: 0 for everyone')
})

t.test('identical content is one entry: the earliest input leads, later ones are its duplicates', async (t) => {
  const r = rankImages([entry(2, 6, 5, 'same'), entry(0, 6, 5, 'same'), entry(1, 4, 5)])
  t.same(r.map((x) => [x.rank, x.item, x.duplicates]), [
    [1, 'i0', ['i2']],
    [2, 'i1', []],
  ])
})

t.test('groupByKey keeps first-seen order of groups and members', async (t) => {
  const g = groupByKey(['a1', 'b1', 'a2', 'c1', 'b2'], (s) => s[0]!)
  t.same([...g.entries()], [['a', ['a1', 'a2']], ['b', ['b1', 'b2']], ['c', ['c1']]])
})
