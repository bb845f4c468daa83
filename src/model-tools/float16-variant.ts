import { modelRef, readVerifiedModel, type CatalogEntry } from '../models/catalog.js'
import { convertToFloat16, Float16ConversionError, type Float16Stats } from './float16.js'
import { installModel, type InstalledModel } from './install.js'
import { manifestPrecision } from '../models/manifest.js'
import { ModelError } from '../models/model-error.js'
import { onnx } from '../models/onnx-proto.js'

export const FLOAT16_SUFFIX = '-fp16'

/** What a measured comparison with the float32 model found (src/scoring/precision-check.ts). */
export interface Float16CheckSummary {
  images: number
  maxAbsDeltaMean: number
  meanAbsDeltaMean: number
  maxAbsDeltaP: number
  provider: string
}

export interface Float16Variant {
  installed: InstalledModel
  stats: Float16Stats
}

/** float16 conversion of a float32 model, as encoded ONNX bytes. */
export function float16Model(base: Uint8Array, where: string): { onnx: Uint8Array; stats: Float16Stats } {
  try {
    const { model, stats } = convertToFloat16(onnx.ModelProto.decode(base))
    return { onnx: onnx.ModelProto.encode(model).finish(), stats }
  } catch (cause) {
    const reason = cause instanceof Float16ConversionError ? cause.message : `not a convertible ONNX model: ${cause instanceof Error ? cause.message : String(cause)}`
    throw new ModelError('MODEL_FILE_UNREADABLE', `cannot convert ${where} to float16: ${reason}`, { cause })
  }
}

/**
 * Installs `<id>/<version>-fp16` beside a float32 model. The variant inherits the base's
 * task, provenance kind and synthetic flag, and records which file it came from, so the
 * service only pairs it with that exact base (float16VariantOf).
 */
export async function installFloat16Variant(
  dir: string,
  base: CatalogEntry,
  options: { onnx?: Uint8Array; stats?: Float16Stats; check?: Float16CheckSummary; now?: Date } = {},
): Promise<Float16Variant> {
  const m = base.manifest
  if (manifestPrecision(m) !== 'float32') throw new ModelError('MODEL_USAGE', `${modelRef(m)} is already ${manifestPrecision(m)}`)
  const converted = options.onnx && options.stats ? { onnx: options.onnx, stats: options.stats } : float16Model(await readVerifiedModel(base), modelRef(m))
  const { stats } = converted
  const { check } = options
  const installed = await installModel({
    dir,
    id: m.id,
    version: `${m.version}${FLOAT16_SUFFIX}`,
    task: m.task,
    onnx: converted.onnx,
    synthetic: m.synthetic,
    precision: 'float16',
    now: options.now,
    provenance: {
      kind: m.provenance.kind,
      ...(m.provenance.seed === undefined ? {} : { seed: m.provenance.seed }),
      baseModel: modelRef(m),
      sourceSha256: m.sha256,
      metrics: {
        weightsConverted: stats.values,
        weightsMaxAbsRoundingError: stats.maxAbsRoundingError,
        weightsFlushedToZero: stats.flushedToZero,
        ...(check ? { check: { images: check.images, maxAbsDeltaMean: check.maxAbsDeltaMean, meanAbsDeltaMean: check.meanAbsDeltaMean, maxAbsDeltaP: check.maxAbsDeltaP, provider: check.provider } } : {}),
      },
      notes: `float16 variant of ${modelRef(m)} (weights and activations float16, softmax and graph inputs/outputs float32)`,
    },
  })
  return { installed, stats }
}
