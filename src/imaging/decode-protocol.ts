/** Messages between DecodePool (decode-pool.ts) and its decode processes (decode-child.ts). */
import type { ErrorCode } from '../errors.js'
import type { ImageFormat } from './formats.js'

export interface DecodeJob {
  bytes: Uint8Array
  /** Model input sizes to sample, [width, height] each. */
  sizes: readonly (readonly [number, number])[]
  maxInputPixels: number
}

export interface DecodedSummary {
  id: string
  format: ImageFormat
  width: number
  height: number
  bytes: number
  /** Perceptual hash of the full-resolution pixels (phash.ts), which only the decode process holds. */
  phash: string
  /** Its four corner-crop hashes (phash.ts cornerHashes). */
  phashCrops: string[]
}

export type DecodeReply =
  | { ok: true; image: DecodedSummary; samples: Uint8Array[]; rss: number }
  | { ok: false; code: ErrorCode; message: string; cause: string | undefined; rss: number }

/** The first message of a decode process: it has loaded sharp and listens. */
export const READY = 'ready'
