import { createHash, randomBytes } from 'node:crypto'
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { ImageAdmission } from '../imaging/admission.js'
import type { ModelManifest } from '../models/manifest.js'
import { decodeIntoTensor, ManifestModel } from '../models/model-pipeline.js'
import { FinetuneError } from './finetune-error.js'

/**
 * The backbone's pooled features (the model's `features` output, 1024 values) for each
 * image, decoded through the service's admission and preprocessed exactly as it does
 * (src/models/model-pipeline.ts), and cached on disk:
 * `<cacheDir>/<model sha256>-<input spec hash>/<image sha256>.f32`, raw little-endian float32. A cached vector is reused only for the same model bytes and the
 * same preprocessing, so a stale cache cannot leak into training.
 */
export interface FeatureSource {
  /** sha256 of the image bytes. */
  id: string
  load: () => Promise<Uint8Array>
}

export interface FeatureOptions {
  modelPath: string
  manifest: ModelManifest
  /** Omit to disable the cache. */
  cacheDir?: string
  batchSize?: number
  /** Where the photos are decoded: the service's image admission (header limits, memory budget, decode processes). */
  admission: ImageAdmission
  onProgress?: (done: number, total: number, cached: number) => void
}

export interface FeatureResult {
  features: Map<string, Float32Array>
  cached: number
  computed: number
  /** Seconds spent decoding and running the model (0 when everything was cached). */
  seconds: number
}

export function featureCacheFolder(cacheDir: string, manifest: ModelManifest): string {
  const spec = createHash('sha256').update(JSON.stringify(manifest.input)).digest('hex').slice(0, 12)
  return join(cacheDir, `${manifest.sha256}-${spec}`)
}

function featureSize(manifest: ModelManifest): number {
  const f = manifest.output.features
  if (!f) throw new FinetuneError(`model ${manifest.id}/${manifest.version} declares no features output; fine-tuning needs one`)
  return f.size
}

async function readCached(path: string, size: number): Promise<Float32Array | undefined> {
  try {
    const buf = await readFile(path)
    if (buf.byteLength !== size * 4) return undefined
    const out = new Float32Array(size)
    for (let i = 0; i < size; i++) out[i] = buf.readFloatLE(i * 4)
    return out
  } catch {
    return undefined
  }
}

async function writeCached(path: string, values: Float32Array): Promise<void> {
  const buf = Buffer.alloc(values.length * 4)
  for (let i = 0; i < values.length; i++) buf.writeFloatLE(values[i]!, i * 4)
  const tmp = `${path}.${randomBytes(4).toString('hex')}.tmp`
  await writeFile(tmp, buf)
  await rename(tmp, path)
}

export async function extractFeatures(sources: readonly FeatureSource[], options: FeatureOptions): Promise<FeatureResult> {
  const { manifest } = options
  const size = featureSize(manifest)
  const batchSize = options.batchSize ?? 8
  const folder = options.cacheDir === undefined ? undefined : featureCacheFolder(options.cacheDir, manifest)
  if (folder) await mkdir(folder, { recursive: true })

  const features = new Map<string, Float32Array>()
  const todo: FeatureSource[] = []
  const unique = [...new Map(sources.map((s) => [s.id, s])).values()]
  for (const s of unique) {
    const hit = folder ? await readCached(join(folder, `${s.id}.f32`), size) : undefined
    if (hit) features.set(s.id, hit)
    else todo.push(s)
  }
  const cached = features.size
  options.onProgress?.(cached, unique.length, cached)
  if (todo.length === 0) return { features, cached, computed: 0, seconds: 0 }

  const started = performance.now()
  let model: ManifestModel | undefined
  try {
    model = await ManifestModel.open(options.modelPath, manifest, { providers: ['cpu'], intraOpThreads: 0, interOpThreads: 1 })
    for (let start = 0; start < todo.length; start += batchSize) {
      const batch = todo.slice(start, start + batchSize)
      const input = model.batchBuffer(batch.length)
      for (const [i, s] of batch.entries()) {
        const bytes = await s.load()
        let img
        try {
          img = await decodeIntoTensor(options.admission, Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), model.spec, input, i)
        } catch (err) {
          throw new FinetuneError(`image ${s.id} cannot be decoded: ${(err as Error).message}`, { cause: err })
        }
        if (img.id !== s.id) throw new FinetuneError(`image ${s.id}: its bytes hash to ${img.id}; the label data is inconsistent`)
      }
      const out = (await model.run(input, batch.length, ['features'])).features
      if (out.length !== size * batch.length) throw new FinetuneError(`model output features has ${out.length} values for ${batch.length} images, expected ${size} each`)
      for (const [i, s] of batch.entries()) {
        const v = out.slice(i * size, (i + 1) * size)
        features.set(s.id, v)
        if (folder) await writeCached(join(folder, `${s.id}.f32`), v)
      }
      options.onProgress?.(features.size, unique.length, cached)
    }
  } finally {
    await model?.dispose()
  }
  return { features, cached, computed: todo.length, seconds: (performance.now() - started) / 1000 }
}
