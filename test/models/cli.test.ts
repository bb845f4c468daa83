import { Writable } from 'node:stream'
import t from 'tap'
import { createProgress } from '../../src/cli/progress.js'
import { runCli } from '../../src/cli/run-cli.js'
import { ConfigSchema } from '../../src/config/schema.js'
import { recordIo } from './cli-io.js'

t.test('usage errors exit 2 with a message and no stack', async (t) => {
  const cases: [string[], RegExp][] = [
    [[], /usage: nima-serve <command>/],
    [['serve-please'], /unknown command "serve-please"/],
    [['models', 'frobnicate'], /unknown models command "frobnicate"/],
    [['models', 'synth', '--seed', 'abc'], /--seed: expected an integer from 0 to 4294967294, got "abc"/],
    [['models', 'synth', '--task', 'beauty'], /--task: expected aesthetic or technical, got "beauty"/],
    [['models', 'list', '--verbose'], /Unknown option '--verbose'/],
    [['models', 'pull', '--from', 'a', '--base-url', 'http://x'], /pull: use --from or --base-url, not both/],
    [['models', 'pull', '--base-url', 'ftp://mirror'], /--base-url: expected an http\(s\) URL, got "ftp:\/\/mirror"/],
  ]
  for (const [argv, message] of cases) {
    const io = recordIo()
    t.equal(await runCli(argv, io), 2, `${argv.join(' ') || '(nothing)'} exits 2`)
    t.match(`${io.stdout}\n${io.stderr}`, message)
    t.notMatch(io.stderr, /\n\s+at /, 'no stack trace')
  }
})

t.test('synth and list', async (t) => {
  const dir = t.testdir()
  const empty = recordIo()
  t.equal(await runCli(['models', 'list', '--dir', dir], empty), 0)
  t.match(empty.stdout, /no models installed in .*; run: nima-serve models ensure/)

  const synth = recordIo()
  t.equal(await runCli(['models', 'synth', '--seed', '5', '--task', 'technical', '--dir', dir], synth), 0)
  t.match(synth.stdout, /technical: installed SYNTHETIC model synthetic-s6 at /, 'seed N+1 for technical')
  t.notMatch(synth.stdout, /aesthetic:/)

  const list = recordIo()
  t.equal(await runCli(['models', 'list', '--dir', dir], list), 0)
  t.equal(list.lines[0], 'id\tversion\tsynthetic\tprecision\tsha256')
  t.match(list.lines[1], /^technical\tsynthetic-s6\tSYNTHETIC\tfloat32\t[0-9a-f]{64}$/)
})

t.test('help exits 0', async (t) => {
  const io = recordIo()
  t.equal(await runCli(['models', 'help'], io), 0)
  t.match(io.stdout, /ensure \[--dir DIR\]/)
})

t.test('--help on every command and subcommand, --version, serve', async (t) => {
  const cases: [string[], RegExp][] = [
    [['--help'], /usage: nima-serve <command>[\s\S]*serve[\s\S]*--version/],
    [['serve', '--help'], /usage: nima-serve serve/],
    [['batch', '--help'], /usage: nima-serve batch/],
    [['rank-hotels', '--help'], /usage: nima-serve rank-hotels/],
    [['finetune', '--help'], /usage: nima-serve finetune/],
    [['models', '--help'], /usage: nima-serve models/],
    [['labels', '--help'], /usage: nima-serve labels/],
  ]
  // A subcommand's --help prints that subcommand's usage, not the group's.
  for (const sub of ['ensure', 'synth', 'pull', 'fp16', 'import', 'list']) cases.push([['models', sub, '--help'], new RegExp(`^usage: nima-serve models ${sub} `)])
  for (const sub of ['add-images', 'export', 'import', 'summary']) cases.push([['labels', sub, '-h'], new RegExp(`^usage: nima-serve labels ${sub} --db FILE`)])
  for (const [argv, message] of cases) {
    const io = recordIo()
    t.equal(await runCli(argv, io), 0, `${argv.join(' ')} exits 0`)
    t.match(io.stdout, message, argv.join(' '))
  }
  const top = recordIo()
  await runCli(['--help'], top)
  for (const sub of ['ensure', 'synth', 'pull', 'fp16', 'import', 'list']) t.match(top.stdout, new RegExp(`\\n  models ${sub} `), `the top-level help lists models ${sub}`)
  for (const sub of ['add-images', 'export', 'import', 'summary']) t.match(top.stdout, new RegExp(`\\n  labels ${sub} `), `the top-level help lists labels ${sub}`)
  const serve = recordIo()
  await runCli(['serve', '--help'], serve)
  const keys = Object.keys(ConfigSchema.properties)
  t.same(keys.filter((k) => !serve.stdout.includes(`\n  ${k}=`)), [], `serve --help lists all ${keys.length} settings with their defaults`)
  const v = recordIo()
  t.equal(await runCli(['--version'], v), 0)
  t.match(v.stdout, /^\d+\.\d+\.\d+$/)
})

t.test('progress: a bar on a TTY, quarter lines otherwise', async (t) => {
  const lines: string[] = []
  const plain = createProgress(undefined, (line) => lines.push(line))
  plain.start('w.hdf5', 4 * 1024 * 1024)
  for (let mb = 1; mb <= 4; mb++) plain.update(mb * 1024 * 1024)
  plain.stop()
  t.same(lines, [
    'w.hdf5: starting download of 4.0 MB',
    'w.hdf5: 25% (1.0 of 4.0 MB)',
    'w.hdf5: 50% (2.0 of 4.0 MB)',
    'w.hdf5: 75% (3.0 of 4.0 MB)',
    'w.hdf5: received 4.0 MB',
  ])

  let drawn = ''
  const tty = Object.assign(
    new Writable({
      write(chunk, _encoding, done) {
        drawn += String(chunk)
        done()
      },
    }),
    { isTTY: true, columns: 100 },
  ) as unknown as NodeJS.WriteStream
  const bar = createProgress(tty, () => t.fail('a TTY gets a bar, not lines'))
  bar.start('w.hdf5', 2 * 1024 * 1024)
  bar.update(2 * 1024 * 1024)
  bar.stop()
  t.match(drawn, /w\.hdf5 \[.*\] 100% \| 2\.0\/2\.0 MB/)
})
