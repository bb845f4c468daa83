/**
 * The inputs of the conversion proof: the user's photos, decoded and turned into tensors by
 * the service's own code, or, when the user names none, seeded photo-like images (no photos
 * ship with nima-serve). Both end up as the model's input tensors, one per image.
 */
import { readFile } from 'node:fs/promises'
import { basename } from 'node:path'
import { loadConfig } from '../config/load.js'
import { admissionOptions, ImageAdmission } from '../imaging/admission.js'
import { writeTensor, type RgbImage, type TensorSpec } from '../imaging/tensor.js'
import { decodeIntoTensor } from '../models/model-pipeline.js'
import { mulberry32, type Rng } from '../util/prng.js'

export interface ProofInputs {
  kind: 'photos' | 'synthetic'
  /** One model input tensor per image. */
  tensors: Float32Array[]
  /** Photo file names, or `synthetic-<seed>-<i>`. */
  labels: string[]
  /** Photos that could not be decoded, with why; they are not counted. */
  skipped: { photo: string; reason: string }[]
}

function channel(value: number): number {
  return value < 0 ? 0 : value > 255 ? 255 : Math.round(value)
}

/**
 * One photo-like 8-bit RGB image: a two-colour gradient in a random direction, a few soft
 * ellipses (objects), a band of fine stripes (texture, edges at every pixel phase, which is
 * where stride-2 padding conventions differ most) and sensor-like noise.
 */
export function photoLikeImage(rng: Rng, width: number, height: number): RgbImage {
  const colour = (): number[] => [rng.uniform(0, 255), rng.uniform(0, 255), rng.uniform(0, 255)]
  const [from, to] = [colour(), colour()]
  const angle = rng.uniform(0, 2 * Math.PI)
  const [dx, dy] = [Math.cos(angle), Math.sin(angle)]
  const blobs = Array.from({ length: 5 }, () => ({
    cx: rng.uniform(0, width),
    cy: rng.uniform(0, height),
    rx: rng.uniform(width / 12, width / 3),
    ry: rng.uniform(height / 12, height / 3),
    colour: colour(),
  }))
  const stripeTop = Math.floor(rng.uniform(0, height * 0.7))
  const stripeHeight = Math.floor(height / 6)
  const period = rng.uniform(2, 7)
  const data = new Uint8Array(width * height * 3)
  for (let y = 0; y < height; y++)
    for (let x = 0; x < width; x++) {
      const t = Math.min(1, Math.max(0, 0.5 + ((x / width - 0.5) * dx + (y / height - 0.5) * dy)))
      const pixel = [0, 1, 2].map((c) => from[c]! + (to[c]! - from[c]!) * t)
      for (const blob of blobs) {
        const r = ((x - blob.cx) / blob.rx) ** 2 + ((y - blob.cy) / blob.ry) ** 2
        const alpha = r >= 1 ? 0 : 1 - r * r
        for (let c = 0; c < 3; c++) pixel[c] = pixel[c]! * (1 - alpha) + blob.colour[c]! * alpha
      }
      const stripe = y >= stripeTop && y < stripeTop + stripeHeight ? 60 * Math.sin((2 * Math.PI * (x + y)) / period) : 0
      const o = (y * width + x) * 3
      for (let c = 0; c < 3; c++) data[o + c] = channel(pixel[c]! + stripe + 6 * rng.normal())
    }
  return { data, width, height }
}

/** `count` photo-like inputs from `seed`, identical on every machine (mulberry32). */
export function syntheticProofInputs(seed: number, count: number, spec: TensorSpec): ProofInputs {
  const tensors: Float32Array[] = []
  const labels: string[] = []
  for (let i = 0; i < count; i++) {
    const out = new Float32Array(spec.width * spec.height * 3)
    writeTensor(photoLikeImage(mulberry32(seed + i), spec.width, spec.height), spec, out)
    tensors.push(out)
    labels.push(`synthetic-${seed}-${i}`)
  }
  return { kind: 'synthetic', tensors, labels, skipped: [] }
}

/**
 * The first `count` photos of `paths` that pass the service's image admission and decode.
 * Photos that do not are skipped and reported; none at all is the caller's error to raise.
 * `admission`: the caller's (the CLI's, with the environment's settings); without one, an
 * admission with `maxInputPixels` and every other setting at its default, closed here.
 */
export async function photoProofInputs(
  paths: readonly string[],
  count: number,
  spec: TensorSpec,
  maxInputPixels: number,
  admission?: ImageAdmission,
): Promise<ProofInputs> {
  const own = admission ? undefined : new ImageAdmission({ ...admissionOptions(loadConfig({}, { MAX_INPUT_PIXELS: maxInputPixels }), 1), decodeProcessStart: 'when-needed' })
  const inputs: ProofInputs = { kind: 'photos', tensors: [], labels: [], skipped: [] }
  try {
    for (const path of paths) {
      if (inputs.tensors.length >= count) break
      const out = new Float32Array(spec.width * spec.height * 3)
      try {
        await decodeIntoTensor((admission ?? own)!, await readFile(path), spec, out)
      } catch (err) {
        inputs.skipped.push({ photo: path, reason: err instanceof Error ? err.message : String(err) })
        continue
      }
      inputs.tensors.push(out)
      inputs.labels.push(basename(path))
    }
  } finally {
    await own?.close()
  }
  return inputs
}
