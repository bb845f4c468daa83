import { extname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Worker } from 'node:worker_threads'
import type { ModelSession, SessionOptions } from './onnx-backend.js'
import type { ThreadReply, ThreadRequest } from './session-protocol.js'

// The worker runs as the same kind of file as this module: .js from dist/ in production,
// .ts under tsx (tests, benchmarks). Node will not start a .ts worker entry even when
// the parent runs under tsx, so there a one-line ES module registers tsx first.
const here = fileURLToPath(import.meta.url)
const entry = new URL(`./session-thread${extname(here)}`, import.meta.url)

function startWorker(workerData: unknown): Worker {
  if (extname(here) !== '.ts') return new Worker(entry, { workerData })
  const tsx = import.meta.resolve('tsx/esm/api')
  const shim = `import(${JSON.stringify(tsx)}).then((api) => { api.register(); return import(${JSON.stringify(entry.href)}) })`
  return new Worker(shim, { eval: true, workerData })
}

/**
 * A ModelSession whose ONNX Runtime session lives on a worker thread of its own, so the
 * event loop only parses, dispatches and answers while a batch infers, and two models run
 * truly at once. Inputs are copied to the worker (about 0.1 ms for a 224×224 image;
 * the tensor may be shared by both models, so it cannot be moved); outputs come back
 * moved. The worker keeps the process alive only while a run is in flight.
 *
 * If the worker dies (it should not: run errors come back as messages), every run in
 * flight and every later one rejects; the scorer answers those requests 500 and a model
 * reload opens a new session.
 */
export function openThreadedSession(model: string | Uint8Array, inputName: string, options: SessionOptions): Promise<ModelSession> {
  const worker = startWorker({ model, inputName, options })
  const pending = new Map<number, { resolve: (outputs: Record<string, Float32Array>) => void; reject: (err: Error) => void }>()
  let nextId = 0
  let dead: Error | undefined
  // While disposing, the worker keeps the process alive until it has exited.
  let disposing = false

  const settleAll = (err: Error) => {
    dead ??= err
    for (const p of pending.values()) p.reject(err)
    pending.clear()
  }

  return new Promise<ModelSession>((resolveOpen, rejectOpen) => {
    worker.on('error', (err) => {
      rejectOpen(err)
      settleAll(new Error(`inference thread failed: ${err.message}`))
    })
    worker.on('exit', (code) => {
      rejectOpen(new Error(`inference thread exited (code ${code}) before its session opened`))
      settleAll(new Error(`inference thread exited (code ${code})`))
    })
    worker.on('message', (msg: ThreadReply) => {
      switch (msg.kind) {
        case 'failed':
          rejectOpen(new Error(msg.message))
          return
        case 'result':
        case 'error': {
          const p = pending.get(msg.id)
          if (!p) return
          pending.delete(msg.id)
          if (pending.size === 0 && !disposing) worker.unref()
          if (msg.kind === 'result') p.resolve(msg.outputs)
          else p.reject(new Error(msg.message))
          return
        }
        case 'ready':
          worker.unref()
          resolveOpen({
            provider: msg.provider,
            fallbacks: msg.fallbacks,
            ...(msg.threadId !== undefined ? { threadId: msg.threadId } : {}),
            run(input, shape, outputs) {
              if (dead) return Promise.reject(dead)
              const id = nextId++
              return new Promise((resolve, reject) => {
                if (pending.size === 0) worker.ref()
                pending.set(id, { resolve, reject })
                worker.postMessage({ kind: 'run', id, input, shape, outputs } satisfies ThreadRequest)
              })
            },
            async dispose() {
              if (dead) return
              dead = new Error('session disposed')
              disposing = true
              const exited = new Promise((r) => worker.once('exit', r))
              worker.ref()
              worker.postMessage({ kind: 'dispose' } satisfies ThreadRequest)
              await exited
            },
          })
      }
    })
  })
}
