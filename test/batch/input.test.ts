import { Readable } from 'node:stream'
import t from 'tap'
import { formatFromPath, itemKey, readInputStream, type InputFormat, type InputItem } from '../../src/batch/input.js'
import { readLines, type TextLine } from '../../src/batch/line-reader.js'

async function items(text: string | string[], format: InputFormat, maxLineBytes?: number): Promise<InputItem[]> {
  const chunks = (Array.isArray(text) ? text : [text]).map((c) => Buffer.from(c))
  const out: InputItem[] = []
  for await (const item of readInputStream(Readable.from(chunks), { format, ...(maxLineBytes ? { maxLineBytes } : {}) })) out.push(item)
  return out
}

async function lines(chunks: string[], maxLineBytes?: number): Promise<TextLine[]> {
  const out: TextLine[] = []
  for await (const l of readLines(Readable.from(chunks.map((c) => Buffer.from(c))), maxLineBytes ? { maxLineBytes } : {})) out.push(l)
  return out
}

t.test('line reader: exact offsets across chunks, CRLF, a torn last line, over-long lines', async (t) => {
  const got = await lines(['ab', 'c\r\nde\n', '\nxyz', 'w'])
  t.same(
    got.map((l) => [l.number, l.text, l.end, l.terminated]),
    [
      [1, 'abc', 5, true],
      [2, 'de', 8, true],
      [3, '', 9, true],
      [4, 'xyzw', 13, false],
    ],
  )
  const long = await lines(['12345', '678\nok\n', 'abcdefghij', 'k\n'], 4)
  t.same(
    long.map((l) => [l.text, l.tooLong, l.end]),
    [
      ['', true, 9],
      ['ok', false, 12],
      ['', true, 24],
    ],
  )
})

t.test('format from the extension', async (t) => {
  t.equal(formatFromPath('a/list.TXT'), 'txt')
  t.equal(formatFromPath('x.csv'), 'csv')
  t.equal(formatFromPath('x.jsonl'), 'jsonl')
  t.equal(formatFromPath('x.ndjson'), 'jsonl')
  t.equal(formatFromPath('x.json'), undefined)
})

t.test('keys: hotel/image, image, source, line', async (t) => {
  t.equal(itemKey({ hotelId: 'h', imageId: '7', source: 's' }, 3), 'h/7')
  t.equal(itemKey({ imageId: '7', source: 's' }, 3), '7')
  t.equal(itemKey({ source: 's' }, 3), 's')
  t.equal(itemKey({}, 3), 'line:3')
})

t.test('txt: paths and URLs, blank lines and # comments skipped', async (t) => {
  const got = await items('# header\n/a/b.jpg\n\n  https://cdn.example/x.jpg?sig=1  \r\nrel/c.png\n#x\n', 'txt')
  t.same(
    got.map((i) => [i.line, i.key, i.source, i.isUrl, i.error]),
    [
      [2, '/a/b.jpg', '/a/b.jpg', false, undefined],
      [4, 'https://cdn.example/x.jpg?sig=1', 'https://cdn.example/x.jpg?sig=1', true, undefined],
      [5, 'rel/c.png', 'rel/c.png', false, undefined],
    ],
  )
  t.ok(got.every((i, k) => k === 0 || i.bytesRead > got[k - 1]!.bytesRead), 'bytesRead grows')
})

t.test('csv: header, quoted fields with commas and newlines, bad records become error items', async (t) => {
  const csv = [
    'Hotel_ID, image_id ,url',
    '1,a,"https://x.example/a,b.jpg"',
    '2,b,"https://x.example/multi',
    'line.jpg"',
    '3,c',
    '4,d,https://x.example/d.jpg,extra',
    '5,e,"https://x.example/e.jpg"',
    '6,,https://x.example/f.jpg',
    '',
  ].join('\n')
  const got = await items(csv, 'csv')
  const view = got.map((i) => ({ line: i.line, key: i.key, source: i.source, code: i.error?.code }))
  t.same(view, [
    { line: 2, key: '1/a', source: 'https://x.example/a,b.jpg', code: undefined },
    { line: 4, key: '2/b', source: 'https://x.example/multi\nline.jpg', code: undefined },
    { line: 5, key: '3/c', source: undefined, code: 'NIMA_INVALID_REQUEST' },
    { line: 6, key: '4/d', source: undefined, code: 'NIMA_INVALID_REQUEST' },
    { line: 7, key: '5/e', source: 'https://x.example/e.jpg', code: undefined },
    { line: 8, key: 'https://x.example/f.jpg', source: 'https://x.example/f.jpg', code: undefined },
  ])
  t.match(got[2]!.error!.message, /line 5: expected 3 fields/)
  t.match(got[3]!.error!.message, /line 6: expected 3 fields/)
  t.equal(got[0]!.isUrl, true)
  t.equal(got[0]!.hotelId, '1')
})

t.test('csv: a path column, and a header with neither url nor path fails as a whole', async (t) => {
  const got = await items('image_id,path\nx,/tmp/x.jpg\n', 'csv')
  t.same(got.map((i) => [i.key, i.source, i.isUrl]), [['x', '/tmp/x.jpg', false]])
  await t.rejects(items('a,b\n1,2\n', 'csv'), { name: 'InputError', message: /no "url" or "path" column/ })
})

t.test('csv: an unclosed quote becomes one error item, not a crash', async (t) => {
  const got = await items('url\nhttps://x.example/1.jpg\n"https://x.example/2.jpg\n', 'csv')
  t.equal(got[0]!.source, 'https://x.example/1.jpg')
  t.equal(got.length, 2)
  t.equal(got[1]!.error?.code, 'NIMA_INVALID_REQUEST')
  t.match(got[1]!.error!.message, /unreadable CSV record/)
})

t.test('jsonl: objects with the same fields; unparsable JSON, non-objects, missing url, wrong types are error items', async (t) => {
  const jsonl = [
    '{"hotel_id": 12, "image_id": "a", "url": "https://x.example/a.jpg"}',
    '{"path": "/tmp/b.jpg"}',
    '{"hotel_id": "h", "image_id": "c"',
    '[1,2]',
    '{"hotel_id": "h", "image_id": "d"}',
    '{"url": "https://x.example/e.jpg", "path": "/tmp/e.jpg"}',
    '{"url": {"nested": true}}',
    '',
    '"just a string"',
  ].join('\n')
  const got = await items(jsonl, 'jsonl')
  t.same(
    got.map((i) => [i.line, i.key, i.error?.code ?? 'ok']),
    [
      [1, '12/a', 'ok'],
      [2, '/tmp/b.jpg', 'ok'],
      [3, 'line:3', 'NIMA_INVALID_REQUEST'],
      [4, 'line:4', 'NIMA_INVALID_REQUEST'],
      [5, 'h/d', 'NIMA_INVALID_REQUEST'],
      [6, 'line:6', 'NIMA_INVALID_REQUEST'],
      [7, 'line:7', 'NIMA_INVALID_REQUEST'],
      [9, 'line:9', 'NIMA_INVALID_REQUEST'],
    ],
  )
  t.match(got[2]!.error!.message, /line 3: not valid JSON/)
  t.match(got[3]!.error!.message, /expected a JSON object, got an array/)
  t.match(got[4]!.error!.message, /no url or path/)
  t.match(got[5]!.error!.message, /both url and path/)
  t.match(got[6]!.error!.message, /url must be a string or a number, got object/)
  t.equal(got[0]!.hotelId, '12', 'numbers become strings')
})

t.test('an over-long line is an error item and reading goes on', async (t) => {
  const got = await items(['{"url":"https://x.example/', 'a'.repeat(100), '.jpg"}\n{"url":"https://x.example/ok.jpg"}\n'], 'jsonl', 64)
  t.same(got.map((i) => [i.line, i.error?.code ?? 'ok']), [
    [1, 'NIMA_INVALID_REQUEST'],
    [2, 'ok'],
  ])
})
