import { readFileSync } from 'node:fs'
import { repo } from './helpers.js'

/** A small reader for the repository's Dockerfile and .dockerignore (no engine runs here). */

export interface Instruction {
  keyword: string
  args: string
  line: number
}

export interface Stage {
  name: string
  /** The FROM image, with global ARG defaults substituted. */
  image: string
  instructions: Instruction[]
}

/** Instructions with line continuations joined; comments and blank lines dropped. */
export function dockerfileInstructions(text = readFileSync(repo('Dockerfile'), 'utf8')): Instruction[] {
  const out: Instruction[] = []
  let buffer = ''
  let start = 0
  text.split('\n').forEach((raw, i) => {
    const line = raw.trimEnd()
    if (buffer === '' && (line.trim() === '' || line.trim().startsWith('#'))) return
    if (buffer !== '' && line.trim().startsWith('#')) return // comment inside a continuation
    if (buffer === '') start = i + 1
    if (line.endsWith('\\')) {
      buffer += line.slice(0, -1) + ' '
      return
    }
    buffer += line
    const match = /^\s*([A-Za-z]+)\s+([\s\S]*)$/.exec(buffer)
    if (!match?.[1]) throw new Error(`Dockerfile line ${start}: cannot parse ${JSON.stringify(buffer)}`)
    out.push({ keyword: match[1].toUpperCase(), args: (match[2] ?? '').replace(/\s+/g, ' ').trim(), line: start })
    buffer = ''
  })
  return out
}

/** The build stages in order, with their instructions. */
export function dockerfileStages(text?: string): Stage[] {
  const globalArgs = new Map<string, string>()
  const stages: Stage[] = []
  for (const ins of dockerfileInstructions(text)) {
    if (ins.keyword === 'FROM') {
      const [image = '', as, name] = ins.args.split(' ')
      const resolved = image.replace(/\$\{?(\w+)\}?/g, (_m, arg: string) => globalArgs.get(arg) ?? `<unset ${arg}>`)
      stages.push({ name: as?.toUpperCase() === 'AS' && name ? name : String(stages.length), image: resolved, instructions: [] })
      continue
    }
    const current = stages.at(-1)
    if (current) current.instructions.push(ins)
    else if (ins.keyword === 'ARG') {
      const [key, value] = ins.args.split('=')
      if (key) globalArgs.set(key, value ?? '')
    }
  }
  return stages
}

/** KEY=value pairs of a stage's ENV instructions. */
export function stageEnv(stage: Stage): Record<string, string> {
  const env: Record<string, string> = {}
  for (const ins of stage.instructions.filter((i) => i.keyword === 'ENV')) {
    for (const m of ins.args.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|\S*)/g)) if (m[1]) env[m[1]] = (m[2] ?? '').replace(/^"|"$/g, '')
  }
  return env
}

export interface Copy {
  from?: string
  sources: string[]
  dest: string
}

export function stageCopies(stage: Stage): Copy[] {
  return stage.instructions
    .filter((i) => i.keyword === 'COPY')
    .map((i) => {
      const words = i.args.split(' ')
      const flags = words.filter((w) => w.startsWith('--'))
      const paths = words.filter((w) => !w.startsWith('--'))
      const from = flags.find((f) => f.startsWith('--from='))?.slice('--from='.length)
      return { ...(from === undefined ? {} : { from }), sources: paths.slice(0, -1), dest: paths.at(-1) ?? '' }
    })
}

/** Docker's .dockerignore rules: patterns in order, the last match wins, `!` re-includes. */
export function dockerignore(text = readFileSync(repo('.dockerignore'), 'utf8')): (path: string) => boolean {
  const rules = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const negate = l.startsWith('!')
      const pattern = (negate ? l.slice(1) : l).replace(/^\/+/, '').replace(/\/+$/, '')
      const regex = new RegExp(
        '^' +
          pattern
            .split(/(\*\*|\*|\?)/)
            .map((part) => (part === '**' ? '.*' : part === '*' ? '[^/]*' : part === '?' ? '[^/]' : part.replace(/[.+^${}()|[\]\\]/g, '\\$&')))
            .join('') +
          '$',
      )
      return { negate, regex }
    })
  /** True when the path (relative to the context) is excluded from the build context. */
  return (path: string) => {
    const prefixes = path.split('/').map((_p, i, parts) => parts.slice(0, i + 1).join('/'))
    let excluded = false
    for (const rule of rules) if (prefixes.some((p) => rule.regex.test(p))) excluded = !rule.negate
    return excluded
  }
}
