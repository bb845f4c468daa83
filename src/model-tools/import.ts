/**
 * `models import`: a user's own Keras NIMA MobileNet v1 weights, converted by the same code
 * as `pull`, proven against the independent reference (float64, with float32's rounding
 * floor measured by the same pass in float32) on a few inputs, and only
 * then installed, with the file's hashes, keras_version, padding decision and the proof's
 * figures in the manifest.
 */
import { access, readFile } from 'node:fs/promises'
import { basename, join, resolve } from 'node:path'
import { FLOAT32_LIMIT_MEAN, FLOAT32_LIMIT_P, PROOF_ROUNDING_MULTIPLE, runConversionProof, type ConversionProof } from './conversion-proof.js'
import { installModel, MANIFEST_FILE, modelManifest, type InstallRequest, type InstalledModel } from './install.js'
import { gitBlobSha1, sha256Hex } from '../models/integrity.js'
import { readKerasFile, type KerasWeightsFile } from './keras-hdf5.js'
import type { ImageAdmission } from '../imaging/admission.js'
import { ModelManifest } from '../models/manifest.js'
import { ModelError } from '../models/model-error.js'
import { photoProofInputs, syntheticProofInputs, type ProofInputs } from './proof-inputs.js'
import { kerasToOnnx } from './pull.js'
import type { Task } from './sources.js'
import { tensorSpecOf } from '../models/model-pipeline.js'

/** Inputs the proof runs when none are named: about 2 s each on one core (docs/models.md). */
export const DEFAULT_PROOF_INPUTS = 3
/** Seed of the photo-like inputs used when the user passes no photos. */
export const PROOF_SEED = 18

export interface ImportOptions {
  /** The models folder to install into. */
  dir: string
  /** The Keras HDF5 file. */
  file: string
  task: Task
  id: string
  version: string
  /** Candidate photos for the proof (e.g. the images of --check DIR); seeded photo-like inputs when absent. */
  photos?: readonly string[]
  /** How many inputs the proof runs; default DEFAULT_PROOF_INPUTS. */
  proofInputs?: number
  /** MAX_INPUT_PIXELS, so the proof decodes photos as the service would. */
  maxInputPixels: number
  /** The admission the proof's photos decode through (the CLI's, with the environment's settings); else one with `maxInputPixels` and defaults. */
  admission?: ImageAdmission
  /** Replace an installed model of the same id and version. */
  force?: boolean
  log?: (line: string) => void
}

export interface ImportResult {
  installed: InstalledModel
  keras: KerasWeightsFile
  proof: ConversionProof
  inputs: ProofInputs
}

function checkName(option: 'id' | 'version', value: string): void {
  const pattern = ModelManifest.properties[option].pattern
  if (pattern !== undefined && !new RegExp(pattern).test(value)) {
    throw new ModelError('MODEL_USAGE', `--${option}: expected a value matching ${pattern}, got ${JSON.stringify(value)}`)
  }
}

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  )
}

const e = (v: number): string => v.toExponential(2)

/** Both errors (ONNX Runtime's and the float32 reference's, each from float64) and the tolerance they give. */
export function proofFigures(proof: ConversionProof, inputs: ProofInputs): string {
  const r = proof.float32Reference
  return (
    `${inputs.tensors.length} ${inputs.kind === 'photos' ? 'photos' : 'synthetic photo-like inputs'}: ` +
    `ONNX Runtime max |Δp| ${e(proof.maxAbsDeltaP)}, max |Δmean| ${e(proof.maxAbsDeltaMean)} from the float64 reference; ` +
    `the float32 reference max |Δp| ${e(r.maxAbsDeltaP)}, max |Δmean| ${e(r.maxAbsDeltaMean)} (tolerance ${PROOF_ROUNDING_MULTIPLE}x that + floor: ` +
    `${e(proof.tolerance.p)}, ${e(proof.tolerance.mean)}), ${proof.seconds.toFixed(1)} s`
  )
}

export function proofRefusal(proof: ConversionProof): string {
  if (proof.failure === 'float32-unfit') {
    return `these weights carry float32 rounding too far to be served in float32 (the float32 reference exceeds max |Δp| ${FLOAT32_LIMIT_P} or max |Δmean| ${FLOAT32_LIMIT_MEAN} from float64)`
  }
  return 'the converted model disagrees with the Keras reference by more than float32 rounding explains'
}

export async function importKerasModel(options: ImportOptions): Promise<ImportResult> {
  const log = options.log ?? (() => {})
  checkName('id', options.id)
  checkName('version', options.version)
  const path = resolve(options.file)
  const target = join(options.dir, options.id, options.version)
  if (options.force !== true && (await exists(join(target, MANIFEST_FILE)))) {
    throw new ModelError('MODEL_USAGE', `${options.id}/${options.version} is already installed in ${target}; choose another --version, or pass --force to replace it`)
  }

  const keras = await readKerasFile(path)
  const content = await readFile(path)
  const hashes = { gitBlobSha1: gitBlobSha1(content), sha256: sha256Hex(content) }
  const fileName = basename(path)
  log(`${fileName}: NIMA MobileNet v1, ${keras.layout} layout, keras_version ${keras.kerasVersion ?? '(none)'}, head ${keras.headLayer}, sha256 ${hashes.sha256}`)
  log(`${fileName}: ${keras.padding.padding} padding on stride-2 convs (${keras.padding.reason})`)
  if (keras.padding.assumed === true) {
    // The proof runs the reference with the same padding, so it cannot catch a wrong guess.
    log(`${fileName}: WARNING: the file does not show which padding its Keras used; if it was saved by Keras 2.1.5-2.2.0, save it with model.save (which keeps model_config) and import that`)
  }

  const onnx = kerasToOnnx(keras, { task: options.task, url: fileName }, hashes)
  const request: InstallRequest = {
    dir: options.dir,
    id: options.id,
    version: options.version,
    task: options.task,
    onnx,
    synthetic: false,
    provenance: {
      kind: 'keras-import',
      sourceGitBlobSha1: hashes.gitBlobSha1,
      sourceSha256: hashes.sha256,
      notes: `imported from ${fileName}; BatchNorm folded, ${keras.padding.padding} padding on stride-2 convs (${keras.padding.reason})`,
      kerasImport: {
        fileName,
        layout: keras.layout,
        ...(keras.kerasVersion === undefined ? {} : { kerasVersion: keras.kerasVersion }),
        headLayer: keras.headLayer,
        padding: keras.padding.padding,
        paddingReason: keras.padding.reason,
      },
    },
  }
  const manifest = await modelManifest(request)
  const spec = tensorSpecOf(manifest)
  const count = options.proofInputs ?? DEFAULT_PROOF_INPUTS
  const inputs =
    options.photos === undefined ? syntheticProofInputs(PROOF_SEED, count, spec) : await photoProofInputs(options.photos, count, spec, options.maxInputPixels, options.admission)
  for (const { photo, reason } of inputs.skipped) log(`proof: skipped ${photo}: ${reason}`)
  if (inputs.tensors.length === 0) {
    throw new ModelError('MODEL_USAGE', `--check: none of the ${options.photos?.length ?? 0} images could be decoded, so the conversion cannot be proven`)
  }

  const proof = await runConversionProof(path, keras.padding.padding, onnx, manifest, inputs.tensors)
  if (!proof.passed) {
    throw new ModelError(
      'MODEL_CONVERSION_PROOF_FAILED',
      `${fileName}: not installed: ${proofRefusal(proof)}: ${proofFigures(proof, inputs)}; worst input ${inputs.labels[proof.worst]}`,
    )
  }
  log(`${fileName}: conversion proof passed: ${proofFigures(proof, inputs)}`)

  const installed = await installModel({
    ...request,
    provenance: {
      ...request.provenance,
      conversionProof: {
        inputs: inputs.kind,
        count: inputs.tensors.length,
        ...(inputs.kind === 'synthetic' ? { seed: PROOF_SEED } : { photos: inputs.labels }),
        maxAbsDeltaP: proof.maxAbsDeltaP,
        maxAbsDeltaMean: proof.maxAbsDeltaMean,
        float32ReferenceMaxAbsDeltaP: proof.float32Reference.maxAbsDeltaP,
        float32ReferenceMaxAbsDeltaMean: proof.float32Reference.maxAbsDeltaMean,
        toleranceP: proof.tolerance.p,
        toleranceMean: proof.tolerance.mean,
        seconds: Number(proof.seconds.toFixed(3)),
        provider: proof.provider,
      },
    },
  })
  return { installed, keras, proof, inputs }
}
