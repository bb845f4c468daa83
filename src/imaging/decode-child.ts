/**
 * Entry of a decode process (see decode-pool.ts): decodes one image at a time with
 * decodeForRequest and sends back only what was asked for (the nearest-neighbour samples
 * the models read, a display copy), so a decode that overruns can be stopped by killing
 * this process, and its memory goes with it.
 */
import { isNimaError } from '../errors.js'
import { READY, type DecodeJob, type DecodeReply } from './decode-protocol.js'
import { decodeForRequest } from './sampled-decode.js'

async function handle(job: DecodeJob): Promise<DecodeReply> {
  try {
    const bytes = Buffer.from(job.bytes.buffer, job.bytes.byteOffset, job.bytes.byteLength)
    const { image, samples, preview } = await decodeForRequest(bytes, job.maxInputPixels, job)
    return { ok: true, image, samples: samples.map((s) => s.data), preview, rss: process.memoryUsage.rss() }
  } catch (err) {
    if (isNimaError(err)) {
      const cause = err.cause instanceof Error ? err.cause.message : err.cause === undefined ? undefined : String(err.cause)
      return { ok: false, code: err.code, message: err.message, cause, rss: process.memoryUsage.rss() }
    }
    return { ok: false, code: 'NIMA_INTERNAL', message: 'The decoder failed', cause: err instanceof Error ? err.message : String(err), rss: process.memoryUsage.rss() }
  }
}

const send = process.send?.bind(process)
if (!send) throw new Error('decode-child.ts runs only as a forked decode process (child_process.fork with an IPC channel)')
process.on('message', (job: DecodeJob) => {
  // A failed send means the parent is gone: exit rather than decode for nobody.
  void handle(job).then((reply) => send(reply, undefined, undefined, (err) => err && process.exit(0)))
})
// The parent gone: nothing left to decode for.
process.on('disconnect', () => process.exit(0))
send(READY, undefined, undefined, (err) => err && process.exit(0))
