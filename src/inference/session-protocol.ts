import type { ExecutionProviderName } from '../config/load.js'
import type { ProviderFailure } from './onnx-backend.js'

/** Messages between a threaded session (threaded-session.ts) and its worker (session-thread.ts). */
export type ThreadRequest =
  | { kind: 'run'; id: number; input: Float32Array; shape: readonly number[]; outputs: readonly string[] }
  | { kind: 'dispose' }

export type ThreadReply =
  | { kind: 'ready'; provider: ExecutionProviderName; fallbacks: readonly ProviderFailure[]; threadId: number | undefined }
  | { kind: 'failed'; message: string }
  | { kind: 'result'; id: number; outputs: Record<string, Float32Array> }
  | { kind: 'error'; id: number; message: string }
