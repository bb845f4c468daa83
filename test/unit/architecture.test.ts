import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import t from 'tap'
import { architectureRules, architectureRulesMarkdown } from '../helpers/architecture-rules.js'
import { projectRoot } from '../helpers/paths.js'

const src = join(projectRoot, 'src')

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name)
    if (e.isDirectory()) return e.name === 'page' ? [] : sourceFiles(p)
    return /\.c?ts$/.test(e.name) ? [relative(projectRoot, p).split('\\').join('/')] : []
  })
}

const rooms = architectureRules().LAYERS.flatMap((l) => l.rooms)
const roomOf = (file: string) => rooms.find((r) => (r.endsWith('/') ? file.startsWith(r) : file === r))

t.test('docs/architecture.md prints the rules of .dependency-cruiser.cjs as they are', async (t) => {
  const doc = readFileSync(join(projectRoot, 'docs', 'architecture.md'), 'utf8')
  t.ok(doc.includes(architectureRulesMarkdown()), 'out of step: run `npx tsx scripts/architecture-rules.ts` and paste its output into docs/architecture.md')
})

t.test('every source file is in a room, and every room exists', async (t) => {
  const files = sourceFiles(src)
  t.ok(files.length > 100, `found the sources (${files.length} files)`)
  t.same(
    files.filter((f) => roomOf(f) === undefined),
    [],
    'files outside every room of LAYERS (.dependency-cruiser.cjs): add their folder (docs/architecture.md, "Adding a folder")',
  )
  t.same(
    rooms.filter((r) => !existsSync(join(projectRoot, r))),
    [],
    'rooms that no longer exist',
  )
  t.equal(new Set(rooms).size, rooms.length, 'each room listed once')
})
