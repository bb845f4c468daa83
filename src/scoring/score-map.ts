/**
 * Class activation maps of NIMA's head, exact because the head is global average pooling
 * → Dense → softmax (docs/explain.md). Pure float64 functions of one image's last feature
 * map, the head's weights and the model's distribution.
 *
 * With fₖ(y,x) the feature map (K channels on an H×W grid) and W, b the Dense head:
 *  - the logit map of bin i is Mᵢ(y,x) = Σₖ Wₖᵢ fₖ(y,x), and mean over the grid of Mᵢ plus bᵢ
 *    is exactly the logit zᵢ (pooling and the Dense layer are both linear);
 *  - the mean score E = Σ vᵢpᵢ has ∂E/∂zᵢ = pᵢ(vᵢ − E), so the score map
 *    S(y,x) = Σᵢ pᵢ(vᵢ − E) Mᵢ(y,x) is, divided by H·W, the first-order change in E per unit
 *    of cell (y,x)'s features: positive cells push the mean up, negative ones down.
 */
import type { Head } from '../models/head.js'
import { meanOf } from './distribution.js'

export interface GridShape {
  channels: number
  height: number
  width: number
}

/** One H×W map, row-major (y, then x). */
export type Grid = Float64Array

/**
 * Mᵢ for every bin of the head, from one image's feature map in NCHW order ([K][H][W]).
 * `maps[i][y*W + x]` = Σₖ Wₖᵢ fₖ(y,x).
 */
export function logitMaps(featureMap: ArrayLike<number>, shape: GridShape, head: Head): Grid[] {
  const { channels, height, width } = shape
  const cells = height * width
  if (featureMap.length !== channels * cells) throw new RangeError(`feature map: expected ${channels}×${height}×${width} = ${channels * cells} values, got ${featureMap.length}`)
  if (head.inputs !== channels) throw new RangeError(`head reads ${head.inputs} features, the feature map has ${channels} channels`)
  const bins = head.outputs
  const maps = Array.from({ length: bins }, () => new Float64Array(cells))
  for (let k = 0; k < channels; k++) {
    const row = k * bins
    const base = k * cells
    for (let c = 0; c < cells; c++) {
      const f = featureMap[base + c]!
      // ReLU6 output: most activations are exactly 0.
      if (f === 0) continue
      for (let i = 0; i < bins; i++) maps[i]![c]! += head.kernel[row + i]! * f
    }
  }
  return maps
}

/** zᵢ = mean over the grid of Mᵢ + bᵢ: the logits the model's softmax received. */
export function logitsFromMaps(maps: readonly Grid[], head: Head): Float64Array {
  return Float64Array.from(maps, (m, i) => gridMean(m) + head.bias[i]!)
}

export function gridMean(grid: ArrayLike<number>): number {
  let sum = 0
  for (let c = 0; c < grid.length; c++) sum += grid[c]!
  return sum / grid.length
}

/** ∂E/∂zᵢ = pᵢ(vᵢ − E): how much each logit moves the mean score. */
export function meanGradient(p: ArrayLike<number>, values: ArrayLike<number>): Float64Array {
  if (p.length !== values.length) throw new RangeError(`distribution has ${p.length} bins, the score values ${values.length}`)
  const e = meanOf(p, values)
  return Float64Array.from({ length: p.length }, (_, i) => p[i]! * (values[i]! - e))
}

/** S(y,x) = Σᵢ pᵢ(vᵢ − E) Mᵢ(y,x). */
export function scoreMap(maps: readonly Grid[], p: ArrayLike<number>, values: ArrayLike<number>): Grid {
  if (maps.length !== p.length) throw new RangeError(`${maps.length} logit maps for ${p.length} bins`)
  const g = meanGradient(p, values)
  const out = new Float64Array(maps[0]?.length ?? 0)
  maps.forEach((m, i) => {
    const gi = g[i]!
    for (let c = 0; c < out.length; c++) out[c]! += gi * m[c]!
  })
  return out
}

/** A row-major grid as rows of numbers, for JSON. */
export function gridRows(grid: ArrayLike<number>, width: number): number[][] {
  const rows: number[][] = []
  for (let y = 0; y * width < grid.length; y++) rows.push(Array.from({ length: width }, (_, x) => grid[y * width + x]!))
  return rows
}
