/** Messages between DecodePool (decode-pool.ts) and its decode processes (decode-child.ts). */
import type { ErrorCode } from '../errors.js'
import type { DecodedSummary, PixelRequest } from './sampled-decode.js'
import type { RgbImage } from './tensor.js'

export interface DecodeJob extends PixelRequest {
  bytes: Uint8Array
  maxInputPixels: number
}

export type DecodeReply =
  | { ok: true; image: DecodedSummary; samples: Uint8Array[]; preview: RgbImage | undefined; rss: number }
  | { ok: false; code: ErrorCode; message: string; cause: string | undefined; rss: number }

/** The first message of a decode process: it has loaded sharp and listens. */
export const READY = 'ready'
