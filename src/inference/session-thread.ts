/**
 * Worker-thread side of a threaded session (threaded-session.ts): owns one ONNX Runtime
 * session, opened with the same code as in the main thread, and runs it here.
 * onnxruntime-node's session.run executes synchronously on the thread that calls it; on
 * the event loop it stopped HTTP parsing and decode dispatch for the whole batch.
 */
import { readlinkSync } from 'node:fs'
import { parentPort, workerData } from 'node:worker_threads'
import { openSession, type ModelSession, type SessionOptions } from './onnx-backend.js'
import type { ThreadReply, ThreadRequest } from './session-protocol.js'

const { model, inputName, options } = workerData as { model: string | Uint8Array; inputName: string; options: SessionOptions }
const port = parentPort!

let session: ModelSession
try {
  session = await openSession(model, inputName, options)
} catch (err) {
  port.postMessage({ kind: 'failed', message: err instanceof Error ? err.message : String(err) } satisfies ThreadReply)
  port.close()
  throw err
}
port.postMessage({ kind: 'ready', provider: session.provider, fallbacks: session.fallbacks, threadId: linuxThreadId() } satisfies ThreadReply)

/** This thread's id as /proc names it (Node names neither its worker threads nor their ids). */
function linuxThreadId(): number | undefined {
  try {
    const id = Number(readlinkSync('/proc/thread-self').split('/').pop())
    return Number.isInteger(id) ? id : undefined
  } catch {
    return undefined
  }
}

// Runs posted before 'dispose' finish and answer first.
const inFlight = new Set<Promise<unknown>>()

port.on('message', (msg: ThreadRequest) => {
  if (msg.kind === 'dispose') {
    void Promise.allSettled(inFlight)
      .then(() => session.dispose())
      .finally(() => port.close())
    return
  }
  const run = session.run(msg.input, msg.shape, msg.outputs).then(
    (outputs) => {
      // The outputs are fresh arrays the session made for this run: moved, not copied.
      const transfer = [...new Set(Object.values(outputs).map((o) => o.buffer as ArrayBuffer))]
      port.postMessage({ kind: 'result', id: msg.id, outputs } satisfies ThreadReply, transfer)
    },
    (err: unknown) => port.postMessage({ kind: 'error', id: msg.id, message: err instanceof Error ? err.message : String(err) } satisfies ThreadReply),
  )
  inFlight.add(run)
  void run.finally(() => inFlight.delete(run))
})
