import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { runFinetuneCommand, runLabelsCommand } from '../../src/cli/finetune-command.js'
import { parseExport } from '../../src/labels/export.js'
import { LabelStore } from '../../src/labels/store.js'
import { readManifest } from '../../src/models/manifest.js'
import { recordIo } from '../models/cli-io.js'
import { testModelsDir } from '../helpers/models.js'
import { tinyPng } from '../labels/helpers.js'

const dir = t.testdir()
const modelsDir = await testModelsDir()

t.test('finetune: usage and option errors exit 2 with the option named', async (t) => {
  const cases: [string[], RegExp][] = [
    [['--labels', 'x.sqlite'], /--base is required/],
    [['--base', 'aesthetic'], /--labels is required/],
    [['--base', 'aesthetic', '--labels', 'x', '--lr', 'abc'], /--lr: expected a positive number, got "abc"/],
    [['--base', 'aesthetic', '--labels', 'x', '--epochs', '2.5'], /--epochs: expected an integer >= 0, got "2.5"/],
    [['--base', 'aesthetic', '--labels', 'x', '--test-split', '1'], /--test-split: expected a number from 0 to below 1, got "1"/],
    [['--base', 'aesthetic', '--labels', 'x', '--rating-std', 'wide'], /--rating-std: expected a number in \(0, 10\] or 'auto', got "wide"/],
    [['--base', 'aesthetic', '--labels', 'x', '--frobnicate'], /Unknown option '--frobnicate'/],
  ]
  for (const [args, message] of cases) {
    const io = recordIo()
    t.equal(await runFinetuneCommand(args, io), 2, args.join(' '))
    t.match(io.stderr, message)
    t.match(io.stderr, /usage: nima-serve finetune/)
  }
  const help = recordIo()
  t.equal(await runFinetuneCommand(['--help'], help), 0)
  t.match(help.stdout, /--weight-decay X/)
  t.equal(await runFinetuneCommand([], recordIo()), 2)
})

t.test('finetune: expected failures exit 1 with one line', async (t) => {
  const io = recordIo()
  t.equal(await runFinetuneCommand(['--base', 'nope', '--labels', 'x', '--models-dir', modelsDir], io), 1)
  t.match(io.stderr, /base model nope not found in .* \(found: .*aesthetic\//)
  const io2 = recordIo()
  t.equal(await runFinetuneCommand(['--base', 'aesthetic', '--labels', join(dir, 'missing.jsonl'), '--models-dir', modelsDir], io2), 1)
  t.match(io2.stderr, /cannot read labels .*missing.jsonl: ENOENT/)
  const empty = join(dir, 'empty.sqlite')
  ;(await LabelStore.open(empty)).close()
  const io3 = recordIo()
  t.equal(await runFinetuneCommand(['--base', 'aesthetic', '--labels', empty, '--models-dir', modelsDir], io3), 1)
  t.match(io3.stderr, /has 0 labelled images; fine-tuning needs at least 3/)
})

t.test('labels add-images / summary / export / import, then finetune from an export', async (t) => {
  const photos = join(dir, 'photos')
  for (const [g, hotel] of ['hotel-a', 'hotel-b', 'hotel-c', 'hotel-d'].entries()) {
    mkdirSync(join(photos, hotel), { recursive: true })
    for (let i = 0; i < 3; i++) writeFileSync(join(photos, hotel, `${i}.png`), (await tinyPng(g * 10 + i)).bytes)
  }
  writeFileSync(join(photos, 'hotel-a', 'notes.txt'), 'not an image')
  const db = join(dir, 'labels.sqlite')

  const add = recordIo()
  t.equal(await runLabelsCommand(['add-images', '--db', db, photos], add), 0)
  t.match(add.stdout, /12 images added, 0 already present, 1 skipped; 12 images in/)
  t.match(add.stderr, /skipped .*notes.txt/)
  const again = recordIo()
  await runLabelsCommand(['add-images', '--db', db, join(photos, 'hotel-a')], again)
  t.match(again.stdout, /0 images added, 3 already present/)

  const store = await LabelStore.open(db)
  const images = store.listImages({ limit: 100 }).items
  t.same([...new Set(images.map((i) => i.group))].sort(), ['hotel-a', 'hotel-b', 'hotel-c', 'hotel-d'], 'grouped by folder')
  images.forEach((img, i) => store.rate({ imageId: img.id, rater: 'ana', rating: 1 + (i % 10) }))
  store.rate({ imageId: images[0]!.id, rater: 'bob', histogram: [0, 0, 0, 1, 2, 1, 0, 0, 0, 0] })
  store.close()

  const summary = recordIo()
  t.equal(await runLabelsCommand(['summary', '--db', db], summary), 0)
  t.match(JSON.parse(summary.stdout), { images: 12, ratings: 13, histogramLabels: 1, agreement: { pairs: 1 } })

  const exportFile = join(dir, 'export', 'labels.jsonl')
  mkdirSync(join(dir, 'export'))
  const exp = recordIo()
  t.equal(await runLabelsCommand(['export', '--db', db, '--out', exportFile, '--with-images', join(dir, 'export', 'images')], exp), 0)
  t.match(exp.stdout, /13 ratings written to .*labels.jsonl, 12 images to/)
  const rows = parseExport(readFileSync(exportFile, 'utf8'))
  t.equal(rows.length, 13)
  t.match(rows[0]!.path, /^images\/[0-9a-f]{64}\.png$/)
  const csv = recordIo()
  await runLabelsCommand(['export', '--db', db, '--format', 'csv'], csv)
  t.equal(parseExport(csv.stdout).length, 13, 'CSV to stdout')

  const copy = join(dir, 'copy.sqlite')
  const imp = recordIo()
  t.equal(await runLabelsCommand(['import', '--db', copy, exportFile], imp), 0)
  t.match(imp.stdout, /13 ratings imported/)
  const copied = await LabelStore.open(copy, { readOnly: true })
  t.same(copied.summary().ratingHistogram, await (async () => {
    const s = await LabelStore.open(db, { readOnly: true })
    const h = s.summary().ratingHistogram
    s.close()
    return h
  })())
  copied.close()

  // an export without paths needs --images; the files are matched by their sha256
  const bare = join(dir, 'bare.jsonl')
  writeFileSync(bare, readFileSync(exportFile, 'utf8').replace(/,"path":"[^"]*"/g, ''))
  const noImages = recordIo()
  t.equal(await runFinetuneCommand(['--base', 'aesthetic', '--labels', bare, '--models-dir', modelsDir], noImages), 2)
  t.match(noImages.stderr, /pass --images <folder>/)

  const out = join(dir, 'models-out')
  cpSync(modelsDir, out, { recursive: true })
  const ft = recordIo()
  const code = await runFinetuneCommand(
    ['--base', 'aesthetic', '--labels', bare, '--images', photos, '--models-dir', modelsDir, '--out', out, '--id', 'aesthetic-mini', '--version', 'v1', '--epochs', '5', '--test-split', '0.25', '--val-split', '0', '--cache', 'none', '--report', join(dir, 'report.json')],
    ft,
  )
  t.equal(code, 0, ft.stderr)
  t.match(ft.stdout, /split by group \(seed 1\): train 9 images \/ 3 groups, val 0 images \/ 0 groups, test 3 images \/ 1 group\b/)
  t.match(ft.stdout, /warning: only 12 labelled images: a few hundred are needed/)
  t.notMatch(ft.stdout, /no validation split although/, '--val-split 0 asked for none: no warning')
  t.match(ft.stdout, /installed aesthetic-mini\/v1 \(SYNTHETIC backbone/)
  const manifest = await readManifest(join(out, 'aesthetic-mini', 'v1', 'manifest.json'))
  t.match(manifest, { id: 'aesthetic-mini', version: 'v1', task: 'aesthetic', synthetic: true, provenance: { kind: 'finetuned' } })
  const report = JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8'))
  t.equal(report.training.epochsRun, 5)
  t.equal(report.metrics.val, null, 'no validation split, no early stopping')
  t.equal(report.data.kind, 'export')
})

t.test('labels: usage errors', async (t) => {
  const io = recordIo()
  t.equal(await runLabelsCommand(['export'], io), 2)
  t.match(io.stderr, /--db is required/)
  const io2 = recordIo()
  t.equal(await runLabelsCommand(['export', '--db', join(dir, 'labels.sqlite'), '--format', 'xml'], io2), 2)
  t.match(io2.stderr, /--format: expected jsonl or csv, got "xml"/)
  const io3 = recordIo()
  t.equal(await runLabelsCommand(['frob'], io3), 2)
  t.match(io3.stderr, /unknown labels command "frob"/)
  const io4 = recordIo()
  t.equal(await runLabelsCommand(['summary', '--db', join(dir, 'nothing-here.sqlite')], io4), 1)
  t.match(io4.stderr, /cannot open label database|not a label database/)
})
