import { existsSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { LabelStore, LabelStoreError, SCHEMA_VERSION } from '../../src/labels/store.js'
import { agreement, labelScore } from '../../src/labels/summary.js'
import { csvHeader, formatRow, parseCsv, parseExport } from '../../src/labels/export.js'
import { addTiny, tinyPng } from './helpers.js'

const fixed = () => new Date('2025-03-04T05:06:07.000Z')

t.test('images are stored once by sha256, with group and first URL; data survives reopening', async (t) => {
  const path = join(t.testdir(), 'sub', 'labels.sqlite')
  const store = await LabelStore.open(path, { now: fixed })
  const { bytes, id } = await tinyPng(1)
  const first = store.addImage({ id, data: bytes, format: 'png', width: 32, height: 32, sourceUrl: 'http://a.example/1.png' })
  t.equal(first.created, true)
  t.match(first.image, { id, format: 'png', width: 32, height: 32, bytes: bytes.length, group: null, sourceUrl: 'http://a.example/1.png', createdAt: '2025-03-04T05:06:07.000Z', ratings: 0 })
  const again = store.addImage({ id, data: bytes, format: 'png', width: 32, height: 32, group: 'hotel-1', sourceUrl: 'http://b.example/same.png' })
  t.equal(again.created, false, 'same bytes, same image')
  t.equal(again.image.group, 'hotel-1', 'a group can be given later')
  t.equal(store.imageByUrl('http://b.example/same.png')?.id, id, 'both URLs now lead to it')
  t.equal(store.imageByUrl('http://c.example/other.png'), undefined)
  t.throws(() => store.addImage({ id: 'nothex', data: bytes, format: 'png', width: 1, height: 1 }), /sha256/)
  t.throws(() => store.addImage({ id, data: bytes, format: 'png', width: 1, height: 1, group: 'bad/group' }), /group: expected/)
  store.rate({ imageId: id, rater: 'ana', rating: 8 })
  store.close()
  t.ok(existsSync(path))

  const reopened = await LabelStore.open(path, { readOnly: true })
  t.teardown(() => reopened.close())
  t.same(Buffer.from(reopened.imageData(id)!), bytes, 'bytes come back intact')
  t.equal(reopened.getImage(id)?.ratings, 1)
  t.equal(reopened.listRatings({ limit: 10 }).items[0]?.rating, 8)
})

t.test('ratings: integer or histogram, one per rater and image (rating again replaces)', async (t) => {
  const store = await LabelStore.open(join(t.testdir(), 'l.sqlite'), { now: fixed })
  t.teardown(() => store.close())
  const id = await addTiny(store, 2)
  const a = store.rate({ imageId: id, rater: 'ana', rating: 7 })
  t.equal(a.created, true)
  t.match(a.rating, { imageId: id, rater: 'ana', rating: 7, histogram: null })
  const b = store.rate({ imageId: id, rater: 'ana', rating: 9 })
  t.equal(b.created, false)
  t.equal(b.rating.id, a.rating.id, 'replaced in place')
  t.equal(b.rating.rating, 9)
  const h = store.rate({ imageId: id, rater: 'AVA votes', histogram: [0, 1, 2, 3, 4, 5, 4, 3, 2, 1] })
  t.same(h.rating.histogram, [0, 1, 2, 3, 4, 5, 4, 3, 2, 1])
  t.equal(h.rating.rating, null)
  const invalid = (input: Parameters<LabelStore['rate']>[0], message: RegExp) =>
    t.throws(() => store.rate(input), { name: 'LabelStoreError', code: 'INVALID', message })
  invalid({ imageId: id, rater: 'ana', rating: 11 }, /rating: expected an integer from 1 to 10, got 11/)
  invalid({ imageId: id, rater: 'ana', rating: 2.5 }, /got 2.5/)
  invalid({ imageId: id, rater: 'ana', histogram: [1, 2] }, /expected 10 counts/)
  invalid({ imageId: id, rater: 'ana', histogram: new Array(10).fill(0) }, /at least one count/)
  invalid({ imageId: id, rater: '', rating: 3 }, /rater: expected/)
  invalid({ imageId: id, rater: 'x'.repeat(65), rating: 3 }, /rater: expected/)
  t.throws(() => store.rate({ imageId: 'f'.repeat(64), rater: 'ana', rating: 3 }), { code: 'NOT_FOUND' })
  t.equal(store.deleteRating(a.rating.id), true)
  t.equal(store.deleteRating(a.rating.id), false)
  t.equal(store.getRating(a.rating.id), undefined)
})

t.test('next image: not yet rated by this rater, least-rated first, skips honoured', async (t) => {
  const store = await LabelStore.open(join(t.testdir(), 'l.sqlite'))
  t.teardown(() => store.close())
  const [i1, i2, i3] = [await addTiny(store, 10), await addTiny(store, 11), await addTiny(store, 12)]
  t.equal(store.nextImage('ana').image?.id, i1, 'oldest first when none is rated')
  store.rate({ imageId: i1, rater: 'bob', rating: 5 })
  t.equal(store.nextImage('ana').image?.id, i2, 'an image nobody rated before one that bob rated')
  t.equal(store.nextImage('ana', [i2]).image?.id, i3)
  store.rate({ imageId: i2, rater: 'ana', rating: 5 })
  store.rate({ imageId: i3, rater: 'ana', rating: 5 })
  const next = store.nextImage('ana')
  t.equal(next.image?.id, i1, 'then the one only bob rated')
  t.equal(next.remaining, 1)
  store.rate({ imageId: i1, rater: 'ana', rating: 6 })
  t.same(store.nextImage('ana'), { image: undefined, remaining: 0 })
  t.equal(store.nextImage('carol').remaining, 3)
})

t.test('listing is paginated by cursor and filterable', async (t) => {
  const store = await LabelStore.open(join(t.testdir(), 'l.sqlite'))
  t.teardown(() => store.close())
  const ids: string[] = []
  for (let n = 0; n < 5; n++) ids.push(await addTiny(store, 20 + n))
  for (const id of ids) store.rate({ imageId: id, rater: 'ana', rating: 4 })
  store.rate({ imageId: ids[0]!, rater: 'bob', rating: 6 })
  const p1 = store.listRatings({ limit: 4 })
  t.equal(p1.items.length, 4)
  t.not(p1.next, null)
  const p2 = store.listRatings({ limit: 4, after: p1.next! })
  t.equal(p2.items.length, 2)
  t.equal(p2.next, null)
  t.same(store.listRatings({ limit: 10, rater: 'bob' }).items.map((r) => r.imageId), [ids[0]])
  t.equal(store.listRatings({ limit: 10, imageId: ids[0]! }).items.length, 2)
  const images = store.listImages({ limit: 3 })
  t.same(images.items.map((i) => i.id), ids.slice(0, 3))
  t.same(store.listImages({ limit: 3, after: images.next! }).items.map((i) => i.id), ids.slice(3))
  t.equal([...store.exportRows()].length, 6)
})

t.test('summary: counts, histogram and agreement between raters', async (t) => {
  const store = await LabelStore.open(join(t.testdir(), 'l.sqlite'))
  t.teardown(() => store.close())
  const a = await addTiny(store, 30)
  const b = await addTiny(store, 31)
  await addTiny(store, 32)
  store.rate({ imageId: a, rater: 'ana', rating: 7 })
  store.rate({ imageId: a, rater: 'bob', rating: 8 })
  store.rate({ imageId: a, rater: 'cy', rating: 4 })
  store.rate({ imageId: b, rater: 'ana', rating: 2 })
  store.rate({ imageId: b, rater: 'AVA', histogram: [0, 0, 0, 0, 0, 0, 0, 0, 0, 4] })
  const s = store.summary()
  t.equal(s.images, 3)
  t.equal(s.labelledImages, 2)
  t.equal(s.ratings, 5)
  t.same(s.ratingHistogram, [0, 1, 0, 1, 0, 0, 1, 1, 0, 0])
  t.equal(s.histogramLabels, 1)
  t.same(s.raters[0], { rater: 'ana', ratings: 2 })
  // pairs: a: |7-8|=1, |7-4|=3, |8-4|=4; b: |2-10|=8 → mean 4, within ±1: 1/4, exact 0
  t.same(s.agreement, { images: 2, pairs: 4, meanAbsDiff: 4, within1: 0.25, exact: 0 })
  t.equal(s.meanScore, (7 + 8 + 4 + 2 + 10) / 5)
  t.equal(s.ratingStd.source, 'default')
  t.same(agreement([]), { images: 0, pairs: 0, meanAbsDiff: null, within1: null, exact: null })
  t.equal(labelScore({ rating: null, histogram: [1, 0, 0, 0, 0, 0, 0, 0, 0, 1] }), 5.5)
})

t.test('schema: versioned; a newer or foreign database is refused', async (t) => {
  const dir = t.testdir()
  const path = join(dir, 'l.sqlite')
  ;(await LabelStore.open(path)).close()
  await t.rejects(LabelStore.open(join(dir, 'missing.sqlite'), { readOnly: true }), LabelStoreError)
  const junk = join(dir, 'junk.sqlite')
  writeFileSync(junk, 'not a database at all, just text that is long enough to look like a header........')
  await t.rejects(LabelStore.open(junk), { name: 'LabelStoreError', code: 'SCHEMA', message: /is not a label database/ })
  t.equal(SCHEMA_VERSION, 1)
})

t.test('exports: JSONL and CSV round-trip, CSV quoting', async (t) => {
  const row = {
    id: 3,
    imageId: 'a'.repeat(64),
    rater: 'Ana, "the" rater',
    rating: null,
    histogram: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    createdAt: '2025-01-01T00:00:00.000Z',
    group: 'hotel\n1',
    sourceUrl: 'http://x.example/a.jpg',
    format: 'jpeg',
  }
  const rating = { ...row, id: 4, rating: 6, histogram: null, rater: 'bob' }
  for (const format of ['jsonl', 'csv'] as const) {
    const text = (format === 'csv' ? csvHeader() : '') + formatRow(row, format) + formatRow(rating, format)
    const parsed = parseExport(text)
    t.equal(parsed.length, 2, format)
    t.match(parsed[0], { id: 3, imageId: row.imageId, rater: row.rater, rating: null, histogram: row.histogram, group: 'hotel\n1', sourceUrl: row.sourceUrl })
    t.match(parsed[1], { id: 4, rating: 6, histogram: null, rater: 'bob' })
  }
  t.same(parseCsv('a,"b,c"\r\n"d""e",f\n'), [
    ['a', 'b,c'],
    ['d"e', 'f'],
  ])
  t.throws(() => parseExport('{"imageId":"x","rater":"a","rating":3}\n'), /imageId must be a sha256/)
  t.throws(() => parseExport(`{"imageId":"${'a'.repeat(64)}","rater":"a","rating":3,"histogram":[1,1,1,1,1,1,1,1,1,1]}\n`), /exactly one of rating and histogram/)
  t.throws(() => parseExport('imageId,rater\n"unterminated'), /not closed/)
})
