import type { NimaModel } from '../../scoring/nima-model.js'
import type { MetadataTensor } from './schemas.js'

/**
 * What one NIMA model looks like through the Open Inference Protocol: its inputs and
 * outputs by name, datatype and shape (-1: the batch). Fixed names rather than the ONNX
 * graph's, so a client keeps working when the model file behind them changes.
 */
export const INPUT_IMAGE = 'image'
export const INPUT_TENSOR = 'tensor'
export const OUTPUT_DISTRIBUTION = 'distribution'
export const OUTPUT_MEAN = 'mean'
export const OUTPUT_NAMES: readonly string[] = [OUTPUT_DISTRIBUTION, OUTPUT_MEAN]
/** Informational only in the protocol: the model file's format. */
export const PLATFORM = 'onnx_onnxv1'

export interface Signature {
  inputs: MetadataTensor[]
  outputs: MetadataTensor[]
}

export function signatureOf(model: NimaModel): Signature {
  const { width, height } = model.tensorSpec
  return {
    inputs: [
      // Encoded images (JPEG, PNG, WebP, …), decoded and preprocessed here as for /score.
      { name: INPUT_IMAGE, datatype: 'BYTES', shape: [-1] },
      // Images the client preprocessed itself: NHWC, the Keras rule's values.
      { name: INPUT_TENSOR, datatype: 'FP32', shape: [-1, height, width, 3] },
    ],
    outputs: [
      { name: OUTPUT_DISTRIBUTION, datatype: 'FP32', shape: [-1, model.manifest.output.scores.bins] },
      { name: OUTPUT_MEAN, datatype: 'FP32', shape: [-1] },
    ],
  }
}
