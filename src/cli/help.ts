import { ConfigSchema } from '../config/schema.js'

/**
 * Every command's help text, in one light module: `nima-serve --help` and `<group> <sub>
 * --help` print from here without importing the commands themselves (which pull in sharp,
 * ONNX Runtime, SQLite...). The group usages (`models --help`, `labels --help`) and the
 * top-level list are built from the same tables, so a subcommand cannot be listed in one
 * and missing from the other.
 */
interface HelpEntry {
  name: string
  /** Arguments after the name, as typed. */
  args: string
  /** Wrapped lines of explanation. */
  lines: readonly string[]
}

export interface SubcommandHelp extends HelpEntry {
  /** One line for the top-level list. */
  summary: string
}

export const MODELS_COMMANDS: readonly SubcommandHelp[] = [
  { name: 'ensure', summary: 'install SYNTHETIC models where none is installed', args: '[--dir DIR]', lines: ['install a SYNTHETIC model for every task that has none (fast when present)'] },
  { name: 'synth', summary: '(re)generate the SYNTHETIC models', args: '[--dir DIR] [--seed N] [--task T]', lines: ['(re)generate SYNTHETIC models (seed N for aesthetic, N+1 for technical)'] },
  { name: 'pull', summary: "download and convert idealo's real weights", args: '[--dir DIR] [--from DIR | --base-url URL]', lines: ["download idealo's real weights (pinned commit, integrity-checked), convert, install"] },
  {
    name: 'fp16',
    summary: 'make float16 variants, for GPUs',
    args: '[--dir DIR] [--id ID] [--check PHOTOS] [--tolerance T]',
    lines: [
      'make float16 variants (<version>-fp16) of the float32 models, for GPUs;',
      '--check scores the photos in folder PHOTOS with both and refuses a',
      'variant whose max |mean difference| exceeds T (default 0.02)',
    ],
  },
  {
    name: 'check-preprocess',
    summary: 'what PREPROCESS=fast changes in the scores',
    args: '--photos DIR [--dir DIR] [--id ID]',
    lines: [
      'score the photos in folder DIR with each installed model, exact and fast',
      '(PREPROCESS); per model: max and mean |Δmean|, the Spearman rank',
      'correlation of the two orders, the largest rank change',
    ],
  },
  {
    name: 'import',
    summary: 'convert and install your own Keras weights',
    args: 'FILE --task T --id ID --version V [--dir DIR] [--check PHOTOS] [--force]',
    lines: [
      'convert your own Keras NIMA MobileNet v1 weights (save_weights or',
      'model.save HDF5), prove the conversion against a float64 Keras',
      'reference on 3 photos of folder PHOTOS (default: 3 seeded',
      'photo-like images), then install <ID>/<V> for task T (aesthetic or technical);',
      '--force replaces an installed <ID>/<V>',
    ],
  },
  { name: 'list', summary: 'list installed models', args: '[--dir DIR]', lines: ['list installed models'] },
]
export const MODELS_FOOTER = 'DIR defaults to $MODELS_DIR or ./models.'

export const LABELS_COMMANDS: readonly SubcommandHelp[] = [
  {
    name: 'add-images',
    summary: 'store image files to be rated',
    args: '--db FILE [--group dir|file|none] PATH...',
    lines: ['store image files (folders are walked); group: the', "image's folder (default), its file name, or none"],
  },
  {
    name: 'export',
    summary: 'write every rating (JSON Lines or CSV)',
    args: '--db FILE [--format jsonl|csv] [--out FILE] [--with-images DIR]',
    lines: ['write every rating (to stdout without --out); with', '--with-images, also the image files, named by sha256'],
  },
  { name: 'import', summary: 'add the ratings of an export', args: '--db FILE [--images DIR] EXPORT', lines: ["add the ratings of an export (images from DIR or the rows' paths)"] },
  { name: 'summary', summary: 'counts, histogram, agreement between raters', args: '--db FILE', lines: ['counts, rating histogram, agreement between raters'] },
]
export const LABELS_FOOTER = 'FILE defaults to $LABELS_DB.'

const COLUMN = 42
const indent = (n: number) => ' '.repeat(n)

function commandLines(prefix: string, commands: readonly HelpEntry[]): string[] {
  const out: string[] = []
  for (const c of commands) {
    const head = `  ${prefix}${c.name} ${c.args}`
    const [first, ...rest] = c.lines
    if (head.length < COLUMN - 1) out.push(head.padEnd(COLUMN) + first)
    else out.push(head, indent(COLUMN) + first)
    for (const line of rest) out.push(indent(COLUMN) + line)
  }
  return out
}

/** `nima-serve <group> --help`. */
export function groupUsage(group: string, commands: readonly SubcommandHelp[], footer: string): string {
  return [`usage: nima-serve ${group} <command> [options]     (each command takes --help)`, '', 'commands:', ...commandLines('', commands), '', footer].join('\n')
}

/** `nima-serve <group> <name> --help`, or undefined for a name the group does not have. */
export function subcommandUsage(group: string, commands: readonly SubcommandHelp[], name: string, footer: string): string | undefined {
  const c = commands.find((x) => x.name === name)
  if (!c) return undefined
  return [`usage: nima-serve ${group} ${c.name} ${c.args}`, '', ...c.lines.map((l) => `  ${l}`), '', footer].join('\n')
}

/** True when argv asks for help anywhere (`models pull --help`, `labels summary -h`). */
export function wantsHelp(args: readonly string[]): boolean {
  return args.some((a) => a === '--help' || a === '-h')
}

export const USAGE = [
  'usage: nima-serve <command> [options]     (every command takes --help)',
  '',
  'commands:',
  ...commandLines('', [{ name: 'serve', args: '', lines: ['start the HTTP service; its settings: nima-serve serve --help'] }]),
  ...commandLines('models ', MODELS_COMMANDS.map((c) => ({ name: c.name, args: '', lines: [c.summary] }))),
  ...commandLines('', [
    { name: 'batch', args: '--input F --output R.jsonl', lines: ['score many images offline: resumable, sharded, cached'] },
    { name: 'rank-hotels', args: '--input R.jsonl ...', lines: ["each hotel's images in rank order, best first"] },
    { name: 'calibrate', args: '--input R.jsonl ...', lines: ["percentiles against your catalogue, a map to your raters' scale (SCORE_CALIBRATION)"] },
  ]),
  ...commandLines('labels ', LABELS_COMMANDS.map((c) => ({ name: c.name, args: '--db FILE', lines: [c.summary] }))),
  ...commandLines('', [{ name: 'finetune', args: '--base ID --labels F', lines: ["train a new head on your labels (Earth Mover's loss)"] }]),
  '',
  'options:',
  '  --help, -h                              this text',
  '  --version, -v                           the installed version',
].join('\n')

/** Wraps text to `width` columns, each line indented by `pad` spaces. */
function wrap(text: string, pad: number, width = 96): string[] {
  const lines: string[] = []
  let line = ''
  for (const word of text.split(/\s+/)) {
    if (line !== '' && pad + line.length + 1 + word.length > width) {
      lines.push(indent(pad) + line)
      line = word
    } else line = line === '' ? word : `${line} ${word}`
  }
  if (line !== '') lines.push(indent(pad) + line)
  return lines
}

/**
 * `nima-serve serve --help`: every setting with its default and meaning, from the config
 * schema (the one source docs/configuration.md's table is generated from too).
 */
export function serveUsage(): string {
  const settings = Object.entries(ConfigSchema.properties).flatMap(([key, s]) => {
    const schema = s as { default?: unknown; description?: string }
    const def = schema.default === '' ? '(empty)' : String(schema.default)
    return [`  ${key}=${def}`, ...wrap(schema.description ?? '', 6)]
  })
  return [
    'usage: nima-serve serve     (e.g. PORT=9000 LOG_LEVEL=debug nima-serve serve)',
    '',
    'Starts the HTTP service in this process (npm start also preloads jemalloc and sizes',
    "libuv's pool). It takes no options: every setting is an environment variable, shown",
    'here with its default (docs/configuration.md has the same table):',
    '',
    ...settings,
  ].join('\n')
}
