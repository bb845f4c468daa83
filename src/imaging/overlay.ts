/**
 * The photo with its score maps laid over it, as one PNG (POST /explain?format=png): one
 * panel per model at display size, each with a diverging colour scale centred on zero
 * (blue pulls the mean down, red pushes it up, clear is neutral) and a legend. The map's
 * cells are drawn as the blocks they are (nearest neighbour): each is one 32×32-pixel cell
 * of the 224×224 input, stretched back over the photo as the model's `fill` resize did.
 *
 * The photo is the display copy the scoring decode made (admission.ts, sampled-decode.ts):
 * nothing here decodes the client's bytes, so the overlay costs no decode outside the
 * admission's memory budget and kill timeout.
 */
import sharp, { type OverlayOptions as SharpOverlay } from 'sharp'
import type { RgbImage } from './tensor.js'

export interface OverlayPanel {
  title: string
  /** Row-major H×W values. */
  map: readonly (readonly number[])[]
  /** Half-range of the colour scale; 0 draws nothing. */
  maxAbs: number
}

const NEGATIVE = [33, 102, 172] as const
const POSITIVE = [178, 24, 43] as const
/** Opacity at |value| = maxAbs; 0 is fully clear, so the photo shows where the map is neutral. */
const MAX_ALPHA = 0.7
const LEGEND_HEIGHT = 64
const GAP = 8

/** RGBA of one value on the diverging scale. */
export function divergingColour(value: number, maxAbs: number): [number, number, number, number] {
  const t = maxAbs > 0 ? Math.max(-1, Math.min(1, value / maxAbs)) : 0
  const [r, g, b] = t < 0 ? NEGATIVE : POSITIVE
  return [r, g, b, Math.round(255 * MAX_ALPHA * Math.abs(t))]
}

function escapeXml(s: string): string {
  return s.replace(/[<>&"']/g, (c) => `&#${c.charCodeAt(0)};`)
}

function formatValue(v: number): string {
  return Math.abs(v) >= 0.01 || v === 0 ? v.toFixed(3) : v.toExponential(1)
}

/** The legend under a panel: title, a colour bar from −max through 0 to +max, its labels. */
function legendSvg(width: number, panel: OverlayPanel): Buffer {
  const barX = 8
  const barW = width - 16
  const stops = [-1, -0.5, 0, 0.5, 1]
    .map((t) => {
      const [r, g, b, a] = divergingColour(t, 1)
      return `<stop offset="${(t + 1) / 2}" stop-color="rgb(${r},${g},${b})" stop-opacity="${(a / 255).toFixed(3)}"/>`
    })
    .join('')
  const label = (x: number, anchor: string, text: string) =>
    `<text x="${x}" y="58" font-family="DejaVu Sans, sans-serif" font-size="11" fill="#222" text-anchor="${anchor}">${escapeXml(text)}</text>`
  return Buffer.from(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${LEGEND_HEIGHT}">` +
      `<rect width="${width}" height="${LEGEND_HEIGHT}" fill="#fff"/>` +
      `<text x="8" y="16" font-family="DejaVu Sans, sans-serif" font-size="13" fill="#111">${escapeXml(panel.title)}</text>` +
      `<defs><linearGradient id="g" x1="0" x2="1" y1="0" y2="0">${stops}</linearGradient></defs>` +
      `<rect x="${barX}" y="26" width="${barW}" height="16" fill="url(#g)" stroke="#888" stroke-width="1"/>` +
      label(barX, 'start', `${formatValue(-panel.maxAbs)} (lowers the mean)`) +
      label(barX + barW / 2, 'middle', '0') +
      label(barX + barW, 'end', `+${formatValue(panel.maxAbs)} (raises it)`) +
      `</svg>`,
  )
}

/** The map as a tiny RGBA image (one pixel per cell). */
function heatPixels(panel: OverlayPanel): { data: Buffer; width: number; height: number } {
  const height = panel.map.length
  const width = panel.map[0]?.length ?? 0
  const data = Buffer.alloc(width * height * 4)
  panel.map.forEach((row, y) =>
    row.forEach((v, x) => {
      data.set(divergingColour(v, panel.maxAbs), (y * width + x) * 4)
    }),
  )
  return { data, width, height }
}

/** `photo`: the decoded photo at display size (8-bit sRGB, oriented), one panel per score map. */
export async function renderOverlay(photo: RgbImage, panels: readonly OverlayPanel[]): Promise<Buffer> {
  const { width, height } = photo
  const photoPng = await sharp(photo.data, { raw: { width, height, channels: 3 } }).png().toBuffer()
  const panelHeight = height + LEGEND_HEIGHT
  const composites: SharpOverlay[] = []
  for (const [i, panel] of panels.entries()) {
    const left = i * (width + GAP)
    const heat = heatPixels(panel)
    const overlay = await sharp(heat.data, { raw: { width: heat.width, height: heat.height, channels: 4 } })
      .resize({ width, height, fit: 'fill', kernel: 'nearest' })
      .png()
      .toBuffer()
    composites.push({ input: photoPng, left, top: 0 }, { input: overlay, left, top: 0 }, { input: legendSvg(width, panel), left, top: height })
  }
  const canvasWidth = panels.length * width + (panels.length - 1) * GAP
  return sharp({ create: { width: canvasWidth, height: panelHeight, channels: 3, background: '#ffffff' } })
    .composite(composites)
    .png()
    .toBuffer()
}
