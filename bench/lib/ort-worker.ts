/**
 * Worker-thread side of the BENCH_ORT_WORKER lever: owns one ONNX Runtime session and
 * runs it off the main thread. onnxruntime-node's session.run executes synchronously on
 * the calling thread, so in the main thread it blocks the event loop for the whole batch.
 */
import { parentPort, workerData } from 'node:worker_threads'
import * as ort from 'onnxruntime-node'

export interface WorkerRunRequest {
  id: number
  feeds: Record<string, { data: Float32Array; dims: readonly number[] }>
  fetches: readonly string[]
}

export type WorkerReply =
  | { kind: 'ready'; inputNames: readonly string[]; outputNames: readonly string[] }
  | { kind: 'result'; id: number; outputs: Record<string, { data: Float32Array; dims: readonly number[] }> }
  | { kind: 'error'; id: number; message: string }

const { path, options } = workerData as { path: string; options: ort.InferenceSession.SessionOptions }
const port = parentPort!

try {
  const session = await ort.InferenceSession.create(path, options)
  port.postMessage({ kind: 'ready', inputNames: session.inputNames, outputNames: session.outputNames } satisfies WorkerReply)
  port.on('message', (msg: WorkerRunRequest | 'release') => {
    if (msg === 'release') {
      void session.release().then(() => port.close())
      return
    }
    const feeds: Record<string, ort.Tensor> = {}
    for (const [name, f] of Object.entries(msg.feeds)) feeds[name] = new ort.Tensor('float32', f.data, f.dims)
    session.run(feeds, [...msg.fetches]).then(
      (result) => {
        const outputs: Record<string, { data: Float32Array; dims: readonly number[] }> = {}
        const transfer: ArrayBuffer[] = []
        for (const name of msg.fetches) {
          const t = result[name]!
          const data = t.data as Float32Array
          outputs[name] = { data, dims: t.dims }
          transfer.push(data.buffer as ArrayBuffer)
        }
        port.postMessage({ kind: 'result', id: msg.id, outputs } satisfies WorkerReply, transfer)
      },
      (err: unknown) => port.postMessage({ kind: 'error', id: msg.id, message: err instanceof Error ? err.message : String(err) } satisfies WorkerReply),
    )
  })
} catch (err) {
  // Creation failures travel back as a run error with id -1; the client rejects create().
  port.postMessage({ kind: 'error', id: -1, message: err instanceof Error ? err.message : String(err) } satisfies WorkerReply)
}
