/**
 * The runtime image drops some installed files (Dockerfile, stage prod-deps: `rm -rf
 * node_modules/…`). This follows the import graph of the built JavaScript (dist/, static
 * and dynamic imports alike) from the server's entry and the CLI's, and checks that none of
 * those paths is ever imported, except behind the two `models` commands that say so when
 * it is missing (pull and import, through loadConverter in src/cli/models-command.ts).
 * test/deploy/image.test.ts then runs the server, the batch CLI and those commands in the
 * image itself.
 */
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import t from 'tap'
import ts from 'typescript'
import { dockerfileStages } from './dockerfile.js'
import { repo } from './helpers.js'

/** What may import a dropped package: the converter modules the CLI loads through loadConverter. */
const GUARDED = new Set(['dist/model-tools/pull.js', 'dist/model-tools/import.js'])

/** Bare specifiers reached from `entry`, each with the file that imports it; `stop` files are not entered. */
function bareImports(entry: string, stop: Set<string> = new Set()): Map<string, string> {
  const found = new Map<string, string>()
  const seen = new Set<string>()
  const queue = [entry]
  while (queue.length > 0) {
    const file = queue.shift()!
    if (seen.has(file) || stop.has(file)) continue
    seen.add(file)
    const info = ts.preProcessFile(readFileSync(repo(file), 'utf8'), true, true)
    for (const { fileName: spec } of info.importedFiles) {
      if (spec.startsWith('.')) {
        const target = resolve(repo(dirname(file)), spec).slice(repo().length + 1)
        if (existsSync(repo(target))) queue.push(target)
        else if (existsSync(repo(`${target}.js`))) queue.push(`${target}.js`)
      } else if (!spec.startsWith('node:') && !found.has(spec)) found.set(spec, file)
    }
  }
  return found
}

/** The node_modules paths the prod-deps stage removes. */
function droppedPaths(): string[] {
  const stage = dockerfileStages().find((s) => s.name === 'prod-deps')
  const run = stage?.instructions.filter((i) => i.keyword === 'RUN').map((i) => i.args).join(' ') ?? ''
  return [...run.matchAll(/rm -rf ((?:node_modules\/\S+\s*)+)/g)].flatMap((m) => (m[1] ?? '').trim().split(/\s+/)).map((p) => p.slice('node_modules/'.length))
}

const why = existsSync(repo('dist/main.cjs')) && existsSync(repo('dist/cli/main.js')) ? undefined : 'dist/ is missing (npm run build)'

t.test('what the runtime image drops, the server and the CLI never import', { skip: why ?? false }, async (t) => {
  const dropped = droppedPaths()
  t.ok(dropped.includes('h5wasm'), `prod-deps drops ${dropped.join(', ')}`)
  const hits = (imports: Map<string, string>) => [...imports].filter(([spec]) => dropped.some((d) => spec === d || spec.startsWith(`${d}/`)))

  const server = bareImports('dist/main.cjs')
  t.ok(server.has('fastify') && server.has('onnxruntime-node'), 'the walk reaches the server\'s dependencies')
  t.same(hits(server), [], 'the server (dist/main.cjs) imports none of them')

  const cli = bareImports('dist/cli/main.js', GUARDED)
  t.ok(cli.has('lmdb') && cli.has('csv-parse'), 'the walk reaches the batch command\'s dependencies')
  t.same(hits(cli), [], `the CLI imports none of them outside ${[...GUARDED].join(' and ')}`)
  for (const file of GUARDED) t.ok(hits(bareImports(file)).length > 0, `${file} does need them (so models ${file.includes('pull') ? 'pull' : 'import'} is guarded for a reason)`)
  const command = readFileSync(repo('src/cli/models-command.ts'), 'utf8')
  for (const file of GUARDED) {
    const module = file.replace(/^dist\//, '../')
    t.match(command, new RegExp(`loadConverter\\('\\w+', \\(\\) => import\\('${module.replace(/[.]/g, '\\.')}'\\)\\)`), `src/cli/models-command.ts loads ${module} through loadConverter`)
  }
})
