import { fork, type ChildProcess } from 'node:child_process'
import { extname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { NimaError } from '../errors.js'
import { READY, type DecodedSummary, type DecodeJob, type DecodeReply } from './decode-protocol.js'
import type { RgbImage } from './tensor.js'

export interface DecodePoolOptions {
  /** Decode processes; each decodes one image at a time. */
  size: number
  /** A decode running longer is killed (SIGKILL) and its process replaced. */
  timeoutMs: number
  maxInputPixels: number
}

export interface SampledImage {
  image: DecodedSummary
  /** One RGB image per requested size, in the order asked. */
  samples: RgbImage[]
}

const shuttingDown = (): NimaError => new NimaError('NIMA_NOT_READY', 'The service is shutting down')

interface Slot {
  proc: ChildProcess | undefined
  ready: Promise<void> | undefined
  busy: boolean
  settle: ((reply: DecodeReply | Error) => void) | undefined
}

// The child runs as the same kind of file as this module: .ts under tsx (tests,
// benchmarks), .js from dist/ in production.
const here = fileURLToPath(import.meta.url)
const childPath = fileURLToPath(new URL(`./decode-child${extname(here)}`, import.meta.url))
const childExecArgv = extname(here) === '.ts' ? ['--import', import.meta.resolve('tsx')] : []

/**
 * A fixed set of decode processes. libjpeg takes in every scan of a progressive file
 * in one call that neither sharp's timeout nor a worker thread can interrupt (measured:
 * sharp's timeout({ seconds: 1 }) threw only after the 6.8 s decode had finished), so
 * the only way to stop a decode is to stop the process running it.
 *
 * Callers bound the decodes in flight to `size` (the scorer's decode slots); a decode
 * asked for with every process busy is a programming error. A process that overruns
 * `timeoutMs` is killed and replaced at once, and its slot is free again immediately;
 * a process that dies mid-decode (a decoder crash) fails that image with 422 and is
 * replaced too.
 */
export class DecodePool {
  readonly #options: DecodePoolOptions
  readonly #slots: Slot[]
  #closed = false
  #timeouts = 0
  #crashes = 0

  constructor(options: DecodePoolOptions) {
    if (!Number.isInteger(options.size) || options.size < 1) throw new RangeError(`DecodePool: size must be an integer ≥ 1, got ${String(options.size)}`)
    this.#options = options
    this.#slots = Array.from({ length: options.size }, () => ({ proc: undefined, ready: undefined, busy: false, settle: undefined }))
    for (const slot of this.#slots) this.#spawn(slot)
  }

  /** Decodes killed for overrunning the timeout, and processes that died mid-decode. */
  get stats(): { size: number; busy: number; timeouts: number; crashes: number } {
    return { size: this.#slots.length, busy: this.#slots.filter((s) => s.busy).length, timeouts: this.#timeouts, crashes: this.#crashes }
  }

  /** Process ids of the decode processes now running (undefined: not started yet). */
  get pids(): (number | undefined)[] {
    return this.#slots.map((s) => s.proc?.pid)
  }

  async decode(bytes: Uint8Array, sizes: readonly (readonly [number, number])[]): Promise<SampledImage> {
    if (this.#closed) throw shuttingDown()
    const slot = this.#slots.find((s) => !s.busy)
    if (!slot) throw new Error(`DecodePool: more decodes at once than its ${this.#slots.length} processes; callers must hold a decode slot`)
    slot.busy = true
    try {
      if (!slot.proc) this.#spawn(slot)
      // A busy process keeps the server process alive until it answers.
      slot.proc?.channel?.ref()
      await slot.ready?.catch((err: unknown) => {
        throw this.#closed ? shuttingDown() : new NimaError('NIMA_INTERNAL', 'A decode process could not start', { cause: err })
      })
      if (this.#closed) throw shuttingDown()
      const reply = await this.#run(slot, { bytes, sizes, maxInputPixels: this.#options.maxInputPixels })
      if (!reply.ok) throw new NimaError(reply.code, reply.message, reply.cause === undefined ? {} : { cause: new Error(reply.cause) })
      return { image: reply.image, samples: reply.samples.map((data, i) => ({ data, width: sizes[i]![0], height: sizes[i]![1] })) }
    } finally {
      slot.busy = false
      slot.proc?.channel?.unref()
    }
  }

  /** Kills every process; decodes in flight fail with 503 NIMA_NOT_READY. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    const exits: Promise<unknown>[] = []
    for (const slot of this.#slots) {
      slot.settle?.(shuttingDown())
      const proc = slot.proc
      slot.proc = undefined
      if (proc && proc.exitCode === null && proc.signalCode === null) {
        exits.push(new Promise((resolve) => proc.once('exit', resolve)))
        proc.ref() // so that awaiting close() waits for the exits
        proc.kill('SIGKILL')
      }
    }
    await Promise.all(exits)
  }

  #run(slot: Slot, job: DecodeJob): Promise<DecodeReply> {
    const proc = slot.proc!
    return new Promise<DecodeReply>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#timeouts += 1
        slot.settle?.(new NimaError('NIMA_DECODE_TIMEOUT', `Decoding the image took longer than ${this.#options.timeoutMs} ms (DECODE_TIMEOUT_MS); it was stopped`))
        this.#replace(slot, proc)
      }, this.#options.timeoutMs)
      slot.settle = (reply) => {
        clearTimeout(timer)
        slot.settle = undefined
        if (reply instanceof Error) reject(reply)
        else resolve(reply)
      }
      proc.send(job, (err) => {
        if (err) slot.settle?.(err)
      })
    })
  }

  /** Kills `proc` (if still the slot's) and starts a fresh process in its place. */
  #replace(slot: Slot, proc: ChildProcess): void {
    if (slot.proc !== proc) return
    proc.kill('SIGKILL')
    slot.proc = undefined
    slot.ready = undefined
    if (!this.#closed) this.#spawn(slot)
  }

  #spawn(slot: Slot): void {
    const proc = fork(childPath, [], { execArgv: childExecArgv, serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    // Idle decode processes never keep the server process alive.
    proc.unref()
    proc.channel?.unref()
    slot.proc = proc
    slot.ready = new Promise<void>((resolve, reject) => {
      proc.on('message', (msg: DecodeReply | typeof READY) => {
        if (msg === READY) resolve()
        else if (slot.proc === proc) slot.settle?.(msg)
      })
      proc.once('exit', (code, signal) => {
        const why = new Error(`decode process exited (code ${String(code)}, signal ${String(signal)})`)
        reject(why)
        if (slot.proc !== proc) return
        slot.proc = undefined
        slot.ready = undefined
        if (slot.settle) {
          this.#crashes += 1
          slot.settle(new NimaError('NIMA_UNDECODABLE_IMAGE', 'The decoder failed on this image', { cause: why }))
        }
        // Respawned lazily by the next decode: a process that cannot start must not
        // turn into a fork loop.
      })
    })
    // A process that dies before it is ready fails the decode waiting for it, not the server.
    slot.ready.catch(() => undefined)
  }
}
