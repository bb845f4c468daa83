/** Runs an encoded NIMA ONNX model on a batch with onnxruntime-node, for tests only. */
import ort from 'onnxruntime-node'
import { stackBatch } from './idealo-input.js'

export interface OnnxScores {
  /** One Float32Array of 10 probabilities per image. */
  scores: Float32Array[]
  features: Float32Array[]
}

export async function runNima(model: Uint8Array, images: readonly Float32Array[]): Promise<OnnxScores> {
  const session = await ort.InferenceSession.create(model)
  try {
    const input = new ort.Tensor('float32', stackBatch(images), [images.length, 224, 224, 3])
    const out = await session.run({ input })
    const scores = out['scores']!.data as Float32Array
    const features = out['features']!.data as Float32Array
    return {
      scores: images.map((_, i) => scores.slice(i * 10, i * 10 + 10)),
      features: images.map((_, i) => features.slice(i * 1024, i * 1024 + 1024)),
    }
  } finally {
    await session.release()
  }
}
