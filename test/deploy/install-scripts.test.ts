/**
 * A quiet `npm ci` (issue 24): every dependency with an install script is decided in
 * package.json's allowScripts and explained in docs/deploy.md, no .npmrc carries a key npm
 * does not know, and every locked package accepts each Node line the project claims, so
 * no EBADENGINE block greets a newcomer. The lockfile is the source: it records both
 * `hasInstallScript` and each package's `engines`.
 */
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import semver from 'semver'
import t from 'tap'
import { projectRoot } from '../helpers/paths.js'

interface LockedPackage {
  version?: string
  hasInstallScript?: boolean
  engines?: { node?: string } | string[]
}
const pkg = JSON.parse(readFileSync(join(projectRoot, 'package.json'), 'utf8')) as { engines: { node: string }; allowScripts: Record<string, boolean> }
const lock = JSON.parse(readFileSync(join(projectRoot, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockedPackage> }
const nameOf = (path: string) => path.slice(path.lastIndexOf('node_modules/') + 'node_modules/'.length)

t.test('every install script is approved or denied in allowScripts, with its reason in docs/deploy.md', async (t) => {
  const withScripts = Object.entries(lock.packages).filter(([path, p]) => path !== '' && p.hasInstallScript).map(([path]) => nameOf(path))
  t.ok(withScripts.includes('onnxruntime-node'), 'the lockfile records install scripts (onnxruntime-node has one)')
  const doc = readFileSync(join(projectRoot, 'docs/deploy.md'), 'utf8')
  for (const name of withScripts) {
    t.type(pkg.allowScripts[name], 'boolean', `${name}: decided in allowScripts`)
    t.match(doc, new RegExp(`\\|[^|\\n]*\`${name}\`[^|\\n]*\\| (allow|deny) \\|`), `${name}: its decision explained in docs/deploy.md`)
  }
  t.equal(pkg.allowScripts['onnxruntime-node'], false, "onnxruntime-node's CUDA download is denied (the GPU image runs it explicitly)")
  for (const name of Object.keys(pkg.allowScripts)) t.ok(withScripts.includes(name), `${name}: an allowScripts entry for a package that still has a script`)
})

t.test('no .npmrc: npm 11 warns about every key it does not know, on every command', async (t) => {
  t.notOk(existsSync(join(projectRoot, '.npmrc')))
})

t.test("every locked package accepts the lowest version of each Node line in package.json's engines", async (t) => {
  const range = pkg.engines.node
  const lines = range.split('||').map((part) => semver.minVersion(part.trim())!.version)
  t.same(lines.map((v) => semver.major(v)), [20, 22, 24], `the claim: ${range}`)
  const refused: string[] = []
  for (const [path, p] of Object.entries(lock.packages)) {
    const wanted = Array.isArray(p.engines) ? undefined : p.engines?.node
    // Platform packages for other machines (sharp's win32-ia32 build...) are not installed, so npm never checks them.
    if (path === '' || wanted === undefined || !existsSync(join(projectRoot, path))) continue
    for (const node of lines) if (!semver.satisfies(node, wanted)) refused.push(`${nameOf(path)}@${p.version} wants node ${wanted}, not ${node}`)
  }
  t.same(refused, [], 'no EBADENGINE on a supported Node')
})
