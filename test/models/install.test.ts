import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import t from 'tap'
import { scanModels } from '../../src/models/catalog.js'
import { installModel, type InstallRequest } from '../../src/model-tools/install.js'
import { sha256Hex } from '../../src/models/integrity.js'
import { readManifest } from '../../src/models/manifest.js'

function request(dir: string, bytes: string, extra: Partial<InstallRequest> = {}): InstallRequest {
  return {
    dir,
    id: 'aesthetic',
    version: 'synthetic-s1',
    task: 'aesthetic',
    onnx: Buffer.from(bytes),
    synthetic: true,
    provenance: { kind: 'synthetic', seed: 1 },
    now: new Date('2025-01-02T03:04:05.000Z'),
    ...extra,
  }
}

t.test('writes model.onnx and a valid manifest with its sha256', async (t) => {
  const dir = t.testdir()
  const installed = await installModel(request(dir, 'fake onnx bytes'))
  t.equal(installed.modelPath, join(dir, 'aesthetic', 'synthetic-s1', 'model.onnx'))
  t.equal(await readFile(installed.modelPath, 'utf8'), 'fake onnx bytes')
  const manifest = await readManifest(installed.manifestPath)
  t.equal(manifest.sha256, sha256Hex(Buffer.from('fake onnx bytes')))
  t.equal(manifest.synthetic, true)
  t.equal(manifest.provenance.createdAt, '2025-01-02T03:04:05.000Z')
  t.match(manifest.provenance.tool, /^nima-serve \d+\.\d+\.\d+/)
  t.same(manifest.input.normalization, { scale: 1 / 127.5, offset: -1 })
  const { entries, problems } = await scanModels(dir)
  t.same(problems, [])
  t.same(entries.map((e) => e.manifest.version), ['synthetic-s1'])
})

t.test('reinstalling a version replaces it and leaves nothing behind', async (t) => {
  const dir = t.testdir()
  await installModel(request(dir, 'first'))
  const second = await installModel(request(dir, 'second'))
  t.equal(await readFile(second.modelPath, 'utf8'), 'second')
  t.same(await readdir(join(dir, 'aesthetic')), ['synthetic-s1'], 'no staging folders left')
  t.same((await readdir(second.dir)).sort(), ['manifest.json', 'model.onnx'])
})

t.test('an interrupted install (no manifest.json yet) is invisible to the catalog', async (t) => {
  const dir = t.testdir()
  await installModel(request(dir, 'good'))
  const staging = join(dir, 'aesthetic', '.synthetic-s2.partial-deadbeef')
  await mkdir(staging, { recursive: true })
  await writeFile(join(staging, 'model.onnx'), 'half')
  await writeFile(join(staging, 'manifest.json.partial'), '{}')
  const { entries, problems } = await scanModels(dir)
  t.same(entries.map((e) => e.manifest.version), ['synthetic-s1'])
  t.same(problems, [])
})

t.test('a manifest that would be invalid is refused before anything is written', async (t) => {
  const dir = t.testdir()
  await t.rejects(installModel(request(dir, 'x', { id: 'Aesthetic' })), { message: /invalid model manifest for Aesthetic\/synthetic-s1: \/id/ })
  t.same(await readdir(dir), [])
})

t.test('a models folder that cannot be written fails with MODEL_INSTALL_FAILED', async (t) => {
  const dir = t.testdir({ blocker: 'a file where the models folder should be' })
  await t.rejects(installModel(request(join(dir, 'blocker'), 'x')), {
    code: 'MODEL_INSTALL_FAILED',
    message: /cannot install aesthetic\/synthetic-s1 into .*blocker\/aesthetic\/synthetic-s1: ENOTDIR/,
  })
})
