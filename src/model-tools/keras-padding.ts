import type { PaddingMode } from '../models/architecture.js'

export interface PaddingDetection {
  padding: PaddingMode
  /** One line saying what in the file decided it, for logs and provenance. */
  reason: string
  /** Set when the file does not show its padding (a nested base without model_config) and the default was taken. */
  assumed?: true
}

/**
 * Which padding the network that saved a flat Keras weights file computed, read from its
 * weight-less ZeroPadding2D layers, which `save_weights` lists in layer_names too:
 *  - conv_pad_1 (a stride-1 block) exists only in Keras 2.1.5 to 2.2.0 MobileNet, which
 *    puts ZeroPadding2D((1, 1)) before every 3x3 conv: stride-2 convs pad symmetrically;
 *  - otherwise (conv_pad_2/4/6/12 only, as in Keras >= 2.2.1, or no pad layers at all, as
 *    in Keras <= 2.1.4 with TF 'same') stride-2 convs pad bottom/right only.
 * idealo pinned keras==2.1.*, so their files may well be of the first kind.
 */
export function detectPadding(layerNames: readonly string[], kerasVersion?: string): PaddingDetection {
  const version = kerasVersion === undefined ? '' : ` (keras_version ${kerasVersion})`
  if (layerNames.includes('conv_pad_1')) {
    return {
      padding: 'symmetric',
      reason: `layer conv_pad_1 present${version}: Keras 2.1.5-2.2.0 MobileNet, ZeroPadding2D((1, 1)) before every 3x3 conv`,
    }
  }
  if (layerNames.includes('conv_pad_2')) {
    return { padding: 'keras', reason: `layers conv_pad_2/4/6/12 only${version}: ZeroPadding2D(((0, 1), (0, 1))) before stride-2 convs` }
  }
  if (layerNames.includes('conv1')) {
    return { padding: 'keras', reason: `no ZeroPadding2D layers${version}: TF 'same' padding, bottom/right on stride-2 convs` }
  }
  return { padding: 'keras', reason: `base layers not listed (nested model?)${version}: assuming Keras >= 2.2.1 padding`, assumed: true }
}
