/**
 * What a full `model.save` file's model_config (the model as JSON) says about the network
 * that its weights alone cannot: the input size, and the layer list of nested models, whose
 * weight-less ZeroPadding2D layers reveal the padding era (keras-padding.ts). Keras 2.x
 * writes batch_input_shape, Keras 3 batch_shape.
 */

export interface KerasModelConfig {
  /** [height, width, channels] of every InputLayer, outer model first. */
  inputShapes: number[][]
  /** Every layer name, nested models' layers included, in config order. */
  layerNames: string[]
}

interface LayerJson {
  class_name?: unknown
  name?: unknown
  config?: { name?: unknown; layers?: unknown; batch_input_shape?: unknown; batch_shape?: unknown }
}

function walk(layers: unknown, out: KerasModelConfig): void {
  if (!Array.isArray(layers)) return
  for (const layer of layers as LayerJson[]) {
    if (typeof layer !== 'object' || layer === null) continue
    const name = layer.config?.name ?? layer.name
    if (typeof name === 'string') out.layerNames.push(name)
    if (layer.class_name === 'InputLayer') {
      const shape = layer.config?.batch_input_shape ?? layer.config?.batch_shape
      if (Array.isArray(shape)) out.inputShapes.push(shape.slice(1).map((d) => (typeof d === 'number' ? d : Number.NaN)))
    }
    walk(layer.config?.layers, out)
  }
}

/** Parses model_config; undefined when the text is not a Keras model description. */
export function parseKerasModelConfig(text: string): KerasModelConfig | undefined {
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch {
    return undefined
  }
  const layers = (json as { config?: { layers?: unknown } } | null)?.config?.layers
  if (!Array.isArray(layers)) return undefined
  const out: KerasModelConfig = { inputShapes: [], layerNames: [] }
  walk(layers, out)
  return out
}
