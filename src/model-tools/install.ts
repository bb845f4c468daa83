import { randomBytes } from 'node:crypto'
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Static } from '@sinclair/typebox'
import { idealoInputSpec, nimaOutputSpec, parseManifest, type ModelManifest, type ModelPrecision, type Provenance } from '../models/manifest.js'
import { sha256Hex } from '../models/integrity.js'
import { onnx } from '../models/onnx-proto.js'
import { ModelError } from '../models/model-error.js'
import type { Task } from './sources.js'

export const MODEL_FILE = 'model.onnx'
export const MANIFEST_FILE = 'manifest.json'

export interface InstallRequest {
  /** The models folder, e.g. ./models. */
  dir: string
  id: string
  version: string
  task: Task
  /** Encoded ONNX model. */
  onnx: Uint8Array
  synthetic: boolean
  /** Default float32. */
  precision?: ModelPrecision
  /** Everything but tool and createdAt, which install fills in. */
  provenance: Omit<Static<typeof Provenance>, 'tool' | 'createdAt'>
  now?: Date
}

export interface InstalledModel {
  dir: string
  manifestPath: string
  modelPath: string
  manifest: ModelManifest
}

let toolName: string | undefined

/** `nima-serve <version>`, read from package.json (two levels up from src/models and dist/models). */
export async function toolVersion(): Promise<string> {
  if (toolName === undefined) {
    try {
      const pkg = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string }
      toolName = `nima-serve ${pkg.version ?? 'unknown'}`
    } catch {
      toolName = 'nima-serve (version unknown)'
    }
  }
  return toolName
}

/**
 * The output names of an encoded model: what the file really offers (a fine-tuned or
 * float16 model made from an older file lacks the feature map), not what today's builder writes.
 */
function graphOutputNames(bytes: Uint8Array): string[] {
  try {
    return (onnx.ModelProto.decode(bytes).graph?.output ?? []).map((o) => o.name ?? '')
  } catch {
    // Not ONNX: the manifest declares no optional output, and opening the model reports the file.
    return []
  }
}

/** The manifest `installModel` writes for a request; the import's proof opens the model with it before installing. */
export async function modelManifest(request: InstallRequest): Promise<ModelManifest> {
  return parseManifest(
    {
      id: request.id,
      version: request.version,
      task: request.task,
      architecture: 'mobilenet_v1',
      file: MODEL_FILE,
      sha256: sha256Hex(request.onnx),
      synthetic: request.synthetic,
      precision: request.precision ?? 'float32',
      input: idealoInputSpec(),
      output: nimaOutputSpec(graphOutputNames(request.onnx)),
      provenance: { ...request.provenance, tool: await toolVersion(), createdAt: (request.now ?? new Date()).toISOString() },
    },
    `for ${request.id}/${request.version}`,
  )
}

/**
 * Installs `<dir>/<id>/<version>/{model.onnx, manifest.json}` so that readers never see a
 * half-written model. Everything is written to a `.partial` folder first; the folder is
 * renamed into place and manifest.json, the file readers look for, appears last by a
 * final rename. A crash leaves at most a folder without manifest.json, which scanners skip.
 * Reinstalling a version removes its manifest before its files, for the same reason.
 */
export async function installModel(request: InstallRequest): Promise<InstalledModel> {
  const manifest = await modelManifest(request)
  const idDir = join(request.dir, request.id)
  const finalDir = join(idDir, request.version)
  const staging = join(idDir, `.${request.version}.partial-${randomBytes(4).toString('hex')}`)
  try {
    await mkdir(staging, { recursive: true })
    await writeFile(join(staging, MODEL_FILE), request.onnx)
    await writeFile(join(staging, `${MANIFEST_FILE}.partial`), `${JSON.stringify(manifest, null, 2)}\n`)
    await rm(join(finalDir, MANIFEST_FILE), { force: true })
    await rm(finalDir, { recursive: true, force: true })
    await rename(staging, finalDir)
    await rename(join(finalDir, `${MANIFEST_FILE}.partial`), join(finalDir, MANIFEST_FILE))
  } catch (cause) {
    // Best effort: the original failure is the one worth reporting.
    await rm(staging, { recursive: true, force: true }).catch(() => {})
    const code = (cause as NodeJS.ErrnoException).code ?? String(cause)
    throw new ModelError('MODEL_INSTALL_FAILED', `cannot install ${request.id}/${request.version} into ${finalDir}: ${code}`, { cause })
  }
  return { dir: finalDir, manifestPath: join(finalDir, MANIFEST_FILE), modelPath: join(finalDir, MODEL_FILE), manifest }
}
