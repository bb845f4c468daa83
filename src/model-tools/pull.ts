import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { downloadVerified, type DownloadOptions } from './download.js'
import { installModel, type InstallRequest, type InstalledModel } from './install.js'
import { gitBlobSha1, sha256Hex } from '../models/integrity.js'
import { readKerasFile, type KerasWeightsFile } from './keras-hdf5.js'
import type { PaddingDetection } from './keras-padding.js'
import { ModelError } from '../models/model-error.js'
import { buildOnnxModel } from '../models/onnx-graph.js'
import { IDEALO_SOURCES, withBaseUrl, type KerasSource } from './sources.js'

export interface PullOptions {
  /** The models folder to install into. */
  dir: string
  /** Defaults to the pinned idealo files; tests pass their own. */
  sources?: readonly KerasSource[]
  /** Convert HDF5 files already in this folder instead of downloading. */
  from?: string
  /** Download `<baseUrl>/<fileName>` instead of the pinned GitHub URLs (same integrity check). */
  baseUrl?: string
  download?: DownloadOptions
  log?: (line: string) => void
}

export interface SourceHashes {
  gitBlobSha1: string
  sha256: string
}

/** Manifest fields for a converted Keras file; only a source marked synthetic says so. */
export function pulledModelFields(
  source: KerasSource,
  hashes: SourceHashes,
  padding: PaddingDetection,
): Pick<InstallRequest, 'synthetic' | 'provenance'> {
  const synthetic = source.synthetic === true
  const conversion = `converted from Keras HDF5: BatchNorm folded, ${padding.padding} padding on stride-2 convs (${padding.reason})`
  return {
    synthetic,
    provenance: {
      kind: synthetic ? 'synthetic' : 'idealo-keras',
      sourceUrl: source.url,
      sourceGitBlobSha1: hashes.gitBlobSha1,
      sourceSha256: hashes.sha256,
      notes: `${source.notes ?? 'idealo image-quality-assessment MobileNet weights'}; ${conversion}`,
    },
  }
}

/**
 * The ONNX model of a Keras file read by readKerasFile, with the padding the file's own
 * layer list calls for; `pull` and `import` both convert through here.
 */
export function kerasToOnnx(file: KerasWeightsFile, source: Pick<KerasSource, 'task' | 'url' | 'synthetic'>, hashes: SourceHashes): Uint8Array {
  return buildOnnxModel(file.weights, {
    padding: file.padding.padding,
    docString: `NIMA MobileNet v1 (${source.task}) converted from ${source.url}`,
    metadata: {
      task: source.task,
      source_git_blob_sha1: hashes.gitBlobSha1,
      synthetic: String(source.synthetic === true),
      padding_reason: file.padding.reason,
    },
  })
}

/**
 * Reads a Keras HDF5, builds the ONNX model with the padding the file's own layer list
 * calls for, and installs it with its provenance.
 */
export async function installFromKeras(
  dir: string,
  source: KerasSource,
  hdf5Path: string,
  hashes: SourceHashes,
  log: (line: string) => void = () => {},
): Promise<InstalledModel> {
  const file = await readKerasFile(hdf5Path)
  log(`${source.fileName}: ${file.padding.padding} padding on stride-2 convs (${file.padding.reason})`)
  const onnx = kerasToOnnx(file, source, hashes)
  return installModel({ dir, id: source.id, version: source.version, task: source.task, onnx, ...pulledModelFields(source, hashes, file.padding) })
}

/** A local file stands in for the download, so it must pass the same integrity check. */
async function verifyLocal(source: KerasSource, path: string): Promise<SourceHashes> {
  let content: Buffer
  try {
    content = await readFile(path)
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code ?? String(cause)
    throw new ModelError('MODEL_FILE_UNREADABLE', `--from: expected ${source.fileName} in ${resolve(path, '..')}, but cannot read ${path} (${code})`, { cause })
  }
  const actual = gitBlobSha1(content)
  if (actual !== source.gitBlobSha1) {
    throw new ModelError(
      'MODEL_INTEGRITY_FAILED',
      `${path} is not the pinned ${source.fileName}: expected git blob sha1 ${source.gitBlobSha1}, got ${actual} (${content.byteLength} bytes)`,
    )
  }
  return { gitBlobSha1: actual, sha256: sha256Hex(content) }
}

/**
 * Installs the real models: downloads every source (or takes them from `from`), checks
 * each against its pinned git blob sha1, converts and installs. All files are fetched
 * before anything is installed, so a failed pull changes nothing.
 */
export async function pullModels(options: PullOptions): Promise<InstalledModel[]> {
  const log = options.log ?? (() => {})
  let sources = options.sources ?? IDEALO_SOURCES
  if (options.baseUrl !== undefined) sources = withBaseUrl(sources, options.baseUrl)

  const fetched: { source: KerasSource; path: string; hashes: SourceHashes }[] = []
  const scratch = options.from === undefined ? await mkdtemp(join(tmpdir(), 'nima-pull-')) : undefined
  try {
    for (const source of sources) {
      if (options.from !== undefined) {
        const path = join(options.from, source.fileName)
        fetched.push({ source, path, hashes: await verifyLocal(source, path) })
        log(`${source.fileName}: found in ${options.from}, integrity ok`)
      } else {
        log(`${source.fileName}: downloading ${source.url}`)
        const result = await downloadVerified(source, join(scratch!, source.fileName), { log, ...options.download })
        fetched.push({ source, path: result.path, hashes: result })
        log(`${source.fileName}: ${result.bytes} bytes, git blob sha1 ${result.gitBlobSha1} ok`)
      }
    }
    const installed: InstalledModel[] = []
    for (const { source, path, hashes } of fetched) {
      const model = await installFromKeras(options.dir, source, path, hashes, log)
      log(`${model.manifest.id}/${model.manifest.version}: installed ${model.modelPath}${model.manifest.synthetic ? ' (SYNTHETIC)' : ''}`)
      installed.push(model)
    }
    return installed
  } finally {
    if (scratch !== undefined) await rm(scratch, { recursive: true, force: true })
  }
}
