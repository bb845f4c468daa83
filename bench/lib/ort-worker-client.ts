import { Worker } from 'node:worker_threads'
import * as ort from 'onnxruntime-node'
import type { WorkerReply, WorkerRunRequest } from './ort-worker.js'

/**
 * Main-thread side of the BENCH_ORT_WORKER lever: an object with the parts of
 * ort.InferenceSession that src/inference/onnx-backend.ts uses (run, release, names),
 * backed by a session living in its own worker thread. Inputs are copied to the worker
 * (structured clone, ~0.1 ms per 224×224 image); outputs come back transferred.
 */
export function createWorkerSession(path: string, options: ort.InferenceSession.SessionOptions): Promise<ort.InferenceSession> {
  // The worker is TypeScript too; Node 20 will not start a .ts worker entry even under
  // --import tsx, so a CommonJS shim loads it through tsx's API.
  const entry = new URL('./ort-worker.ts', import.meta.url).href
  const tsxApi = import.meta.resolve('tsx/esm/api')
  const shim = `import(${JSON.stringify(tsxApi)}).then((api) => { api.register(); return import(${JSON.stringify(entry)}) })`
  const worker = new Worker(shim, { eval: true, workerData: { path, options } })
  const pending = new Map<number, { resolve: (v: ort.InferenceSession.ReturnType) => void; reject: (e: Error) => void }>()
  let nextId = 0
  return new Promise((resolveCreate, rejectCreate) => {
    worker.once('error', (err) => rejectCreate(err))
    worker.on('message', (msg: WorkerReply) => {
      if (msg.kind === 'ready') {
        const session = {
          inputNames: msg.inputNames,
          outputNames: msg.outputNames,
          run(feeds: ort.InferenceSession.FeedsType, fetches: readonly string[]): Promise<ort.InferenceSession.ReturnType> {
            const id = nextId++
            const req: WorkerRunRequest = { id, fetches, feeds: {} }
            for (const [name, t] of Object.entries(feeds)) req.feeds[name] = { data: t.data as Float32Array, dims: t.dims }
            return new Promise((resolve, reject) => {
              pending.set(id, { resolve, reject })
              worker.postMessage(req)
            })
          },
          async release() {
            worker.postMessage('release')
            await new Promise((r) => worker.once('exit', r))
          },
        }
        resolveCreate(session as unknown as ort.InferenceSession)
      } else if (msg.kind === 'error' && msg.id === -1) {
        rejectCreate(new Error(msg.message))
        void worker.terminate()
      } else {
        const p = pending.get(msg.id)
        if (!p) return
        pending.delete(msg.id)
        if (msg.kind === 'error') p.reject(new Error(msg.message))
        else {
          const out: Record<string, ort.Tensor> = {}
          for (const [name, o] of Object.entries(msg.outputs)) out[name] = new ort.Tensor('float32', o.data, o.dims)
          p.resolve(out as ort.InferenceSession.ReturnType)
        }
      }
    })
  })
}
