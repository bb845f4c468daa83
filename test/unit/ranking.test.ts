import t from 'tap'
import { groupByKey, rankOrder } from '../../src/scoring/ranking.js'

t.test('best combined first, ties by aesthetic, then by input order', async (t) => {
  const items = [
    { index: 0, combined: 5, tieBreak: 5 },
    { index: 1, combined: 7, tieBreak: 1 },
    { index: 2, combined: 5, tieBreak: 6 },
    { index: 3, combined: 5, tieBreak: 6 },
  ]
  t.same(rankOrder(items).map((i) => i.index), [1, 2, 3, 0])
  t.same(items.map((i) => i.index), [0, 1, 2, 3], 'input untouched')
})

t.test('groupByKey keeps first-seen order of groups and members', async (t) => {
  const g = groupByKey(['a1', 'b1', 'a2', 'c1', 'b2'], (s) => s[0]!)
  t.same([...g.entries()], [['a', ['a1', 'a2']], ['b', ['b1', 'b2']], ['c', ['c1']]])
})
