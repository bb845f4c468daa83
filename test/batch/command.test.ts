import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import type { BatchSummary } from '../../src/batch/pipeline.js'
import { runBatchCommand } from '../../src/cli/batch-command.js'
import { startUpstream } from '../helpers/service.js'
import { testModelsDir } from '../helpers/models.js'
import { recordIo } from '../models/cli-io.js'
import { readResults, smallPhotos } from './helpers.js'

const dir = mkdtempSync(join(tmpdir(), 'nima-batch-cmd-test-'))
t.teardown(() => rmSync(dir, { recursive: true, force: true }))
const [photoA, photoB] = smallPhotos(2) as [string, string]

t.test('usage errors exit 2 and say what was expected; unreadable input exits 1', async (t) => {
  const input = join(dir, 'u.txt')
  writeFileSync(input, `${photoA}\n`)
  const out = join(dir, 'u.jsonl')
  const cases: [string[], number, RegExp][] = [
    [['--output', out], 2, /--input is required/],
    [['--input', input], 2, /--output is required/],
    [['--input', input, '--output', out, '--shard', '3/3'], 2, /--shard: expected i\/n/],
    [['--input', input, '--output', out, '--format', 'xml'], 2, /--format: expected txt, csv, jsonl, got "xml"/],
    [['--input', join(dir, 'list.dat'), '--output', out], 2, /--format is needed/],
    [['--input', input, '--output', out, '--concurrency', '0'], 2, /--concurrency: expected an integer from 1 to 4096, got "0"/],
    [['--input', input, '--output', out, '--cache', dir, '--no-cache'], 2, /exclude each other/],
    [['--input', input, '--output', out, '--bogus'], 2, /Unknown option '--bogus'/],
    [['--input', input, '--output', out, '--models', 'Bad Model'], 2, /MODELS/],
    [['--input', join(dir, 'nope.txt'), '--output', out], 1, /cannot read --input .*nope\.txt \(ENOENT\)/],
  ]
  for (const [args, code, message] of cases) {
    const io = recordIo({ MODELS_DIR: await testModelsDir() })
    t.equal(await runBatchCommand(args, io), code, args.join(' '))
    t.match(io.stderr, message)
  }
  const help = recordIo()
  t.equal(await runBatchCommand(['--help'], help), 0)
  t.match(help.stdout, /usage: nima-serve batch --input FILE --output RESULTS.jsonl/)
})

t.test('CSV with URLs through the SSRF-safe fetcher, local paths, and bad lines: one line each, never fatal', async (t) => {
  const jpeg = readFileSync(photoB)
  const upstream = await startUpstream((req, res) => {
    const path = (req.url ?? '').split('?')[0]
    if (path === '/ok.jpg' || path === '/copy.jpg') res.writeHead(200, { 'content-type': 'image/jpeg' }).end(jpeg)
    else if (path === '/text.jpg') res.writeHead(200, { 'content-type': 'image/jpeg' }).end('this is not an image')
    else if (path === '/to-metadata') res.writeHead(302, { location: 'http://169.254.169.254/latest/meta-data/' }).end()
    else res.writeHead(404).end()
  })
  t.teardown(upstream.close)
  const port = new URL(upstream.url).port
  const csv = [
    'hotel_id,image_id,url,path',
    `h1,local,,"${photoA}"`,
    `h1,web,${upstream.url}/ok.jpg,`,
    `h2,same-bytes,${upstream.url}/copy.jpg,`,
    `h1,missing,${upstream.url}/missing.jpg?sig=SECRET-TOKEN,`,
    `h1,not-image,${upstream.url}/text.jpg,`,
    `h2,loopback-2,http://127.0.0.2:${port}/ok.jpg,`,
    `h2,redirect,${upstream.url}/to-metadata,`,
    'h2,ftp,ftp://example.com/a.jpg,',
    'h3,no-source,,',
    'h3,too,many,fields,here',
    `h3,both,${upstream.url}/ok.jpg,${photoA}`,
    '',
  ].join('\n')
  const input = join(dir, 'photos.csv')
  writeFileSync(input, csv)
  const output = join(dir, 'csv-results.jsonl')
  const io = recordIo({ MODELS_DIR: await testModelsDir() })
  const code = await runBatchCommand(['--input', input, '--output', output, '--allow', '127.0.0.1', '--batch-size', '2', '--cache', join(dir, 'cache')], io)
  t.equal(code, 0, io.stderr)

  const rows = new Map(readResults(output).map((r) => [r.key, r]))
  const outcome = (key: string) => rows.get(key)?.error?.code ?? (rows.get(key)?.cached ? 'cached' : rows.get(key) ? 'scored' : 'absent')
  t.same(
    Object.fromEntries([...rows.keys()].sort().map((k) => [k, outcome(k)])),
    {
      'h1/local': 'scored',
      'h1/missing': 'NIMA_UPSTREAM_FAILED',
      'h1/not-image': 'NIMA_UNSUPPORTED_MEDIA_TYPE',
      'h1/web': rows.get('h1/web')!.cached ? 'cached' : 'scored',
      'h2/ftp': 'NIMA_URL_INVALID',
      'h2/loopback-2': 'NIMA_URL_BLOCKED',
      'h2/redirect': 'NIMA_URL_BLOCKED',
      'h2/same-bytes': rows.get('h2/same-bytes')!.cached ? 'cached' : 'scored',
      'h3/both': 'NIMA_INVALID_REQUEST',
      'h3/no-source': 'NIMA_INVALID_REQUEST',
      'h3/too': 'NIMA_INVALID_REQUEST',
    },
  )
  t.equal([rows.get('h1/web')!, rows.get('h2/same-bytes')!].filter((r) => r.cached).length, 1, 'identical bytes from two URLs are scored once')
  const web = rows.get('h1/web')!
  t.match(web, { hotel_id: 'h1', image_id: 'web', source: `${upstream.url}/ok.jpg`, format: 'jpeg', bytes: jpeg.length })
  t.match(web.sha256, /^[0-9a-f]{64}$/)
  t.ok(web.combined!.score > 1 && web.combined!.score < 10)
  t.same(Object.keys(web.scores!).sort(), ['aesthetic', 'technical'])
  t.equal(web.scores!['aesthetic']!.distribution.length, 10)
  t.match(web.models, { aesthetic: { id: 'aesthetic', synthetic: true }, technical: { id: 'technical', synthetic: true } })
  t.notMatch(rows.get('h1/missing')!.error!.message, /SECRET-TOKEN/, 'error messages never carry the query string')
  t.match(rows.get('h3/too')!.error!.message, /expected 4 fields/)

  const summary = JSON.parse(io.lines.at(-1)!) as BatchSummary
  t.match(summary, { total: 11, written: 11, failed: 8, scored: 2, cached: 1, skippedResume: 0, notInShard: 0, interrupted: false })
  t.same(summary.failuresByCode, { NIMA_UPSTREAM_FAILED: 1, NIMA_UNSUPPORTED_MEDIA_TYPE: 1, NIMA_URL_BLOCKED: 2, NIMA_URL_INVALID: 1, NIMA_INVALID_REQUEST: 3 })
  t.match(io.stderr, /batch: done in .*11 lines written \(2 scored, 1 cached, 8 failed\)/)
  t.match(io.stderr, /SYNTHETIC/)
})

t.test('JSONL and txt inputs with bad lines', async (t) => {
  const jsonl = join(dir, 'bad.jsonl')
  writeFileSync(jsonl, ['{"image_id":"a","path":' + JSON.stringify(photoA) + '}', 'not json', '{"image_id":"b"}', '[]', ''].join('\n'))
  const out1 = join(dir, 'bad-results.jsonl')
  const io1 = recordIo({ MODELS_DIR: await testModelsDir() })
  t.equal(await runBatchCommand(['--input', jsonl, '--output', out1, '--no-cache'], io1), 0, io1.stderr)
  t.same(
    readResults(out1).map((r) => [r.key, r.line, r.error?.code ?? 'ok']).sort(),
    [
      ['a', 1, 'ok'],
      ['b', 3, 'NIMA_INVALID_REQUEST'],
      ['line:2', 2, 'NIMA_INVALID_REQUEST'],
      ['line:4', 4, 'NIMA_INVALID_REQUEST'],
    ],
  )

  // A .list file read as txt through --format; an empty file and a missing file fail per line.
  const empty = join(dir, 'empty.jpg')
  writeFileSync(empty, '')
  const list = join(dir, 'images.list.in')
  writeFileSync(list, `# photos\n${photoA}\n${empty}\n${join(dir, 'absent.jpg')}\n${dir}\n`)
  const out2 = join(dir, 'txt-results.jsonl')
  const io2 = recordIo({ MODELS_DIR: await testModelsDir() })
  t.equal(await runBatchCommand(['--input', list, '--format', 'txt', '--output', out2, '--no-cache'], io2), 0, io2.stderr)
  t.same(
    readResults(out2).map((r) => [r.line, r.error?.code ?? 'ok']).sort(),
    [
      [2, 'ok'],
      [3, 'NIMA_MISSING_IMAGE'],
      [4, 'NIMA_MISSING_IMAGE'],
      [5, 'NIMA_MISSING_IMAGE'],
    ],
  )
})
