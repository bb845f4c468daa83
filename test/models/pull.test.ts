import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { rmSync } from 'node:fs'
import { mkdtemp, readdir, readFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { runCli } from '../../src/cli/run-cli.js'
import { gitBlobSha1, sha256Hex } from '../../src/models/integrity.js'
import { writeKerasWeights } from '../../src/model-tools/keras-hdf5-writer.js'
import { readManifest } from '../../src/models/manifest.js'
import { onnx } from '../../src/models/onnx-proto.js'
import { pulledModelFields } from '../../src/model-tools/pull.js'
import { IDEALO_SOURCES, type KerasSource } from '../../src/model-tools/sources.js'
import { syntheticWeights } from '../../src/model-tools/synthetic-weights.js'
import { recordIo } from './cli-io.js'

// Seeded Keras-layout files stand in for idealo's, under the real file names. The
// sources below mark them synthetic, so the installed manifests stay honest; the
// download → verify → convert → install path is the one used for the real files.
// A temp folder removed at exit rather than t.testdir(): under parallel runs the root
// test's fixture folder was seen to vanish before the last subtest had used it.
const fixtures = await mkdtemp(join(tmpdir(), 'nima-pull-fixtures-'))
process.on('exit', () => rmSync(fixtures, { recursive: true, force: true }))
const files = new Map<string, Buffer>()
// The technical file has Keras 2.1.6's layer list, so both padding conventions are pulled.
for (const [task, seed, mobilenet] of [['aesthetic', 101, 'keras-2.2'], ['technical', 102, 'keras-2.1.6']] as const) {
  const name = IDEALO_SOURCES.find((s) => s.task === task)!.fileName
  await writeKerasWeights(join(fixtures, name), syntheticWeights(seed), { mobilenet })
  files.set(name, await readFile(join(fixtures, name)))
}

function testSources(base: string): KerasSource[] {
  return IDEALO_SOURCES.map((s) => ({
    ...s,
    version: `fixture-${s.task}`,
    url: `${base}/${s.fileName}`,
    gitBlobSha1: gitBlobSha1(files.get(s.fileName)!),
    synthetic: true,
    notes: 'seeded test weights served by a local HTTP server, not idealo weights',
  }))
}

type Handler = (req: IncomingMessage, res: ServerResponse, hit: number) => void

/** A server on 127.0.0.1, port 0; `hits` counts requests per path. */
async function serve(t: { teardown: (fn: () => Promise<void>) => void }, handler: Handler): Promise<{ base: string; hits: Map<string, number> }> {
  const hits = new Map<string, number>()
  const server = createServer((req, res) => {
    const hit = (hits.get(req.url ?? '') ?? 0) + 1
    hits.set(req.url ?? '', hit)
    handler(req, res, hit)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  return { base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, hits }
}

function sendFile(req: IncomingMessage, res: ServerResponse, transform: (b: Buffer) => Buffer = (b) => b): void {
  const body = files.get((req.url ?? '').split('/').pop() ?? '')
  if (body === undefined) {
    res.writeHead(404).end('not found')
    return
  }
  const out = transform(body)
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': out.length }).end(out)
}

const fast = { download: { backoffMs: 1, attempts: 3 } }

t.test('success: downloads, verifies, converts and installs both models', async (t) => {
  const { base, hits } = await serve(t, (req, res) => sendFile(req, res))
  const dir = t.testdir()
  const io = recordIo()
  t.equal(await runCli(['models', 'pull', '--dir', dir], io, { sources: testSources(base), ...fast }), 0, io.stderr)
  t.same([...hits.values()], [1, 1], 'one request per file')
  t.match(io.stdout, /weights_mobilenet_aesthetic_0\.07\.hdf5: starting download of \d+\.\d MB/, 'plain progress lines off a TTY')
  t.match(io.stdout, /installed aesthetic\/fixture-aesthetic, technical\/fixture-technical/)
  t.match(io.stdout, /weights_mobilenet_aesthetic_0\.07\.hdf5: keras padding on stride-2 convs \(layers conv_pad_2\/4\/6\/12 only/)
  t.match(io.stdout, /weights_mobilenet_technical_0\.11\.hdf5: symmetric padding on stride-2 convs \(layer conv_pad_1 present \(keras_version 2\.1\.6\)/)

  for (const source of testSources(base)) {
    const manifest = await readManifest(join(dir, source.id, source.version, 'manifest.json'))
    const onnxBytes = await readFile(join(dir, source.id, source.version, 'model.onnx'))
    t.equal(manifest.sha256, sha256Hex(onnxBytes), `${source.id}: manifest sha256 is the ONNX file's`)
    t.equal(manifest.task, source.task)
    t.equal(manifest.synthetic, true, 'seeded fixture weights are declared synthetic')
    t.match(manifest.provenance, {
      kind: 'synthetic',
      sourceUrl: source.url,
      sourceGitBlobSha1: source.gitBlobSha1,
      sourceSha256: sha256Hex(files.get(source.fileName)!),
      notes: /not idealo weights; converted from Keras HDF5: BatchNorm folded, (keras|symmetric) padding/,
    })
    const padding = onnx.ModelProto.decode(onnxBytes).metadataProps.find((p) => p.key === 'padding')?.value
    t.equal(padding, source.task === 'technical' ? 'symmetric' : 'keras', `${source.id}: ONNX built with the padding its file calls for`)
  }
})

t.test('the real sources produce honest, non-synthetic manifests', async (t) => {
  const real = IDEALO_SOURCES[0]!
  const fields = pulledModelFields(real, { gitBlobSha1: real.gitBlobSha1, sha256: 'f'.repeat(64) }, { padding: 'symmetric', reason: 'layer conv_pad_1 present' })
  t.equal(fields.synthetic, false)
  t.match(fields.provenance, {
    kind: 'idealo-keras',
    sourceUrl: real.url,
    sourceGitBlobSha1: '003fb321ce92445e41d708144a3656589f9214e7',
    notes: 'idealo image-quality-assessment MobileNet weights; converted from Keras HDF5: BatchNorm folded, symmetric padding on stride-2 convs (layer conv_pad_1 present)',
  })
  t.same(
    IDEALO_SOURCES.map((s) => [s.id, s.version, s.url, s.gitBlobSha1]),
    [
      [
        'aesthetic',
        'idealo-0.07',
        'https://raw.githubusercontent.com/idealo/image-quality-assessment/dceaf7c2d218bc6e80b21d6e147e3b56a21b7f31/models/MobileNet/weights_mobilenet_aesthetic_0.07.hdf5',
        '003fb321ce92445e41d708144a3656589f9214e7',
      ],
      [
        'technical',
        'idealo-0.11',
        'https://raw.githubusercontent.com/idealo/image-quality-assessment/dceaf7c2d218bc6e80b21d6e147e3b56a21b7f31/models/MobileNet/weights_mobilenet_technical_0.11.hdf5',
        '5e4a4ca2ce639309bfa4038d0bc10ba92b93bd26',
      ],
    ],
  )
})

t.test('a corrupted file fails the integrity check, is deleted, and nothing is installed', async (t) => {
  const { base, hits } = await serve(t, (req, res) =>
    sendFile(req, res, (b) => {
      const copy = Buffer.from(b)
      copy[copy.length >> 1]! ^= 0xff
      return copy
    }),
  )
  const dir = t.testdir()
  const io = recordIo()
  const sources = testSources(base)
  t.equal(await runCli(['models', 'pull', '--dir', dir], io, { sources, ...fast }), 1)
  t.match(
    io.stderr,
    new RegExp(
      `^nima-serve: weights_mobilenet_aesthetic_0\\.07\\.hdf5 from ${base}/weights_mobilenet_aesthetic_0\\.07\\.hdf5 ` +
        `failed its integrity check after 3 attempts: expected git blob sha1 ${sources[0]!.gitBlobSha1}, ` +
        `got [0-9a-f]{40} \\(\\d+ bytes\\); the file was deleted$`,
    ),
  )
  t.equal(hits.get('/weights_mobilenet_aesthetic_0.07.hdf5'), 3, 'retried, since a transfer can be corrupted in transit')
  t.same(await readdir(dir), [], 'nothing installed')
})

t.test('a 500 is retried with backoff, then the pull succeeds', async (t) => {
  const { base, hits } = await serve(t, (req, res, hit) => (hit === 1 ? res.writeHead(500).end('try later') : sendFile(req, res)))
  const dir = t.testdir()
  const io = recordIo()
  t.equal(await runCli(['models', 'pull', '--dir', dir], io, { sources: testSources(base), ...fast }), 0, io.stderr)
  t.match(io.stdout, /weights_mobilenet_aesthetic_0\.07\.hdf5: attempt 1\/3 failed \(HTTP 500\); retrying in 0\.0 s/)
  t.same([...hits.values()], [2, 2])
  t.ok((await readdir(join(dir, 'aesthetic'))).includes('fixture-aesthetic'))
})

t.test('a 404 is not retried', async (t) => {
  const { base, hits } = await serve(t, (_req, res) => res.writeHead(404).end())
  const io = recordIo()
  t.equal(await runCli(['models', 'pull', '--dir', t.testdir()], io, { sources: testSources(base), ...fast }), 1)
  t.match(io.stderr, /downloading http:\/\/127\.0\.0\.1:\d+\/weights_mobilenet_aesthetic_0\.07\.hdf5 failed after 1 attempt: the server answered HTTP 404/)
  t.same([...hits.values()], [1])
})

t.test('an unreachable host gives one clear offline line, no stack', async (t) => {
  // A port that was just closed refuses connections, like a host with no network.
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise<void>((resolve) => server.close(() => resolve()))

  const io = recordIo()
  const sources = testSources(`http://127.0.0.1:${port}`)
  t.equal(await runCli(['models', 'pull', '--dir', t.testdir()], io, { sources, download: { backoffMs: 1, attempts: 2 } }), 1)
  t.equal(io.errors.length, 1, 'one message')
  t.match(
    io.stderr,
    new RegExp(
      `^nima-serve: cannot reach 127\\.0\\.0\\.1:${port} \\(ECONNREFUSED\\) after 2 attempts: are you offline\\? ` +
        'To install weights fetched another way: nima-serve models pull --from <dir>$',
    ),
  )
})

t.test('--from converts files already on disk, checked against the pinned hashes', async (t) => {
  const dir = t.testdir()
  const io = recordIo()
  const sources = testSources('http://unused.invalid')
  t.equal(await runCli(['models', 'pull', '--dir', dir, '--from', fixtures], io, { sources }), 0, io.stderr)
  t.match(io.stdout, /weights_mobilenet_technical_0\.11\.hdf5: found in .*, integrity ok/)
  t.ok((await readdir(join(dir, 'technical'))).includes('fixture-technical'))

  const wrong = recordIo()
  const mismatched = sources.map((s) => ({ ...s, gitBlobSha1: '0'.repeat(40) }))
  t.equal(await runCli(['models', 'pull', '--dir', t.testdir(), '--from', fixtures], wrong, { sources: mismatched }), 1)
  t.match(wrong.stderr, /weights_mobilenet_aesthetic_0\.07\.hdf5 is not the pinned weights_mobilenet_aesthetic_0\.07\.hdf5: expected git blob sha1 0{40}, got [0-9a-f]{40}/)

  const missing = recordIo()
  t.equal(await runCli(['models', 'pull', '--dir', t.testdir(), '--from', t.testdir()], missing, { sources }), 1)
  t.match(missing.stderr, /--from: expected weights_mobilenet_aesthetic_0\.07\.hdf5 in .*, but cannot read .* \(ENOENT\)/)
})

t.test('--base-url fetches the same files from a mirror', async (t) => {
  const { base, hits } = await serve(t, (req, res) => sendFile(req, res))
  const dir = t.testdir()
  const io = recordIo()
  const sources = testSources('http://127.0.0.1:9/nowhere')
  t.equal(await runCli(['models', 'pull', '--dir', dir, '--base-url', `${base}/mirror/`], io, { sources, ...fast }), 0, io.stderr)
  t.same([...hits.keys()], ['/mirror/weights_mobilenet_aesthetic_0.07.hdf5', '/mirror/weights_mobilenet_technical_0.11.hdf5'])
})
