import { fork, type ChildProcess } from 'node:child_process'
import { extname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { NimaError } from '../errors.js'
import { READY, type DecodeJob, type DecodeReply } from './decode-protocol.js'
import type { DecodedPixels, PixelRequest } from './sampled-decode.js'

export interface DecodePoolOptions {
  /** Decode processes; each decodes one image at a time. */
  size: number
  /** A decode running longer is killed (SIGKILL) and its process replaced. */
  timeoutMs: number
  maxInputPixels: number
  /**
   * A process whose RSS is above this after a decode is replaced by the spare: the C
   * allocators keep much of a large decode's memory mapped after it is freed, and a few
   * processes each keeping hundreds of MB would defeat the memory budget. Default 192 MiB.
   */
  recycleRssBytes?: number
  /**
   * 'now' (default): every process starts with the pool, so the first large image does
   * not wait for one. 'when-needed': the first decode starts them; for tools, most of
   * whose images never leave the inline lane.
   */
  start?: 'now' | 'when-needed'
}

/**
 * Idle decode processes never keep the server process alive; a busy one does (its
 * process handle too, so that its exit is noticed even if it dies before answering).
 */
function hold(w: Worker, busy: boolean): void {
  if (busy) {
    w.proc.ref()
    w.proc.channel?.ref()
  } else {
    w.proc.unref()
    w.proc.channel?.unref()
  }
}

const shuttingDown = (): NimaError => new NimaError('NIMA_NOT_READY', 'The service is shutting down')

interface Worker {
  proc: ChildProcess
  /** Settles when the process has loaded sharp and listens; rejects if it exits first. */
  ready: Promise<void>
}

interface Slot {
  worker: Worker | undefined
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
 * `timeoutMs` is killed and its slot takes over a spare process that is already
 * started, so the next image does not wait for a process start-up (about 0.2 s from
 * dist/, over 1 s under tsx); a new spare starts in the background. A process that dies
 * mid-decode (a decoder crash) fails that image with 422 and is replaced the same way.
 */
export class DecodePool {
  readonly #options: DecodePoolOptions
  readonly #slots: Slot[]
  #spare: Worker | undefined
  #closed = false
  #timeouts = 0
  #crashes = 0
  #recycled = 0

  constructor(options: DecodePoolOptions) {
    if (!Number.isInteger(options.size) || options.size < 1) throw new RangeError(`DecodePool: size must be an integer ≥ 1, got ${String(options.size)}`)
    this.#options = options
    const now = options.start !== 'when-needed'
    this.#slots = Array.from({ length: options.size }, () => ({ worker: now ? this.#start() : undefined, busy: false, settle: undefined }))
    this.#spare = now ? this.#start() : undefined
  }

  /** Decodes killed for overrunning the timeout, processes that died mid-decode, processes replaced for their RSS. */
  get stats(): { size: number; busy: number; timeouts: number; crashes: number; recycled: number } {
    return { size: this.#slots.length, busy: this.#slots.filter((s) => s.busy).length, timeouts: this.#timeouts, crashes: this.#crashes, recycled: this.#recycled }
  }

  /** Process ids of the slots' decode processes (undefined: none at the moment), spare not included. */
  get pids(): (number | undefined)[] {
    return this.#slots.map((s) => s.worker?.proc.pid)
  }

  async decode(bytes: Uint8Array, request: PixelRequest): Promise<DecodedPixels> {
    if (this.#closed) throw shuttingDown()
    const slot = this.#slots.find((s) => !s.busy)
    if (!slot) throw new Error(`DecodePool: more decodes at once than its ${this.#slots.length} processes; callers must hold a decode slot`)
    slot.busy = true
    try {
      const worker = (slot.worker ??= this.#takeSpare())
      hold(worker, true)
      await worker.ready.catch((err: unknown) => {
        throw this.#closed ? shuttingDown() : new NimaError('NIMA_INTERNAL', 'A decode process could not start', { cause: err })
      })
      if (this.#closed) throw shuttingDown()
      const reply = await this.#run(slot, worker, {
        bytes,
        sizes: request.sizes,
        ...(request.preview !== undefined ? { preview: request.preview } : {}),
        ...(request.preprocess !== undefined ? { preprocess: request.preprocess } : {}),
        maxInputPixels: this.#options.maxInputPixels,
      })
      if (reply.rss > (this.#options.recycleRssBytes ?? 192 * 1024 * 1024) && slot.worker === worker && !this.#closed) {
        this.#recycled += 1
        slot.worker = this.#takeSpare()
        // The slot (and the caller's share of the memory budget) is held until the memory is
        // really returned, or the next large decode would overlap with it.
        const exited = new Promise((resolve) => worker.proc.once('exit', resolve))
        worker.proc.kill('SIGKILL')
        await exited
      }
      if (!reply.ok) throw new NimaError(reply.code, reply.message, reply.cause === undefined ? {} : { cause: new Error(reply.cause) })
      const samples = reply.samples.map((data, i) => ({ data, width: request.sizes[i]![0], height: request.sizes[i]![1] }))
      return reply.preview === undefined ? { image: reply.image, samples } : { image: reply.image, samples, preview: reply.preview }
    } finally {
      slot.busy = false
      if (slot.worker) hold(slot.worker, false)
    }
  }

  /** Kills every process; decodes in flight fail with 503 NIMA_NOT_READY. */
  async close(): Promise<void> {
    if (this.#closed) return
    this.#closed = true
    const workers = [...this.#slots.map((s) => s.worker), this.#spare]
    for (const slot of this.#slots) {
      slot.settle?.(shuttingDown())
      slot.worker = undefined
    }
    this.#spare = undefined
    const exits: Promise<unknown>[] = []
    for (const w of workers) {
      if (!w || w.proc.exitCode !== null || w.proc.signalCode !== null) continue
      exits.push(new Promise((resolve) => w.proc.once('exit', resolve)))
      w.proc.ref() // so that awaiting close() waits for the exits
      w.proc.kill('SIGKILL')
    }
    await Promise.all(exits)
  }

  #run(slot: Slot, worker: Worker, job: DecodeJob): Promise<DecodeReply> {
    return new Promise<DecodeReply>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#timeouts += 1
        slot.settle?.(new NimaError('NIMA_DECODE_TIMEOUT', `Decoding the image took longer than ${this.#options.timeoutMs} ms (DECODE_TIMEOUT_MS); it was stopped`))
        if (slot.worker === worker) {
          worker.proc.kill('SIGKILL')
          slot.worker = this.#closed ? undefined : this.#takeSpare()
        }
      }, this.#options.timeoutMs)
      slot.settle = (reply) => {
        clearTimeout(timer)
        slot.settle = undefined
        if (reply instanceof Error) reject(reply)
        else resolve(reply)
      }
      worker.proc.send(job, (err) => {
        if (err) slot.settle?.(err)
      })
    })
  }

  /** The spare process (or a new one when there is none), and a new spare behind it. */
  #takeSpare(): Worker {
    const w = this.#spare ?? this.#start()
    this.#spare = this.#closed ? undefined : this.#start()
    return w
  }

  #start(): Worker {
    const proc = fork(childPath, [], { execArgv: childExecArgv, serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    const slotOf = () => this.#slots.find((s) => s.worker?.proc === proc)
    const ready = new Promise<void>((resolve, reject) => {
      proc.on('message', (msg: DecodeReply | typeof READY) => {
        if (msg === READY) resolve()
        else slotOf()?.settle?.(msg)
      })
      proc.once('exit', (code, signal) => {
        const why = new Error(`decode process exited (code ${String(code)}, signal ${String(signal)})`)
        reject(why)
        // Not replaced here but by the next decode that needs it: a process that cannot
        // start must not turn into a fork loop.
        if (this.#spare?.proc === proc) this.#spare = undefined
        const slot = slotOf()
        if (!slot) return
        slot.worker = undefined
        if (slot.settle) {
          this.#crashes += 1
          slot.settle(new NimaError('NIMA_UNDECODABLE_IMAGE', 'The decoder failed on this image', { cause: why }))
        }
      })
    })
    // A process that dies before it is ready fails the decode waiting for it, not the server.
    ready.catch(() => undefined)
    const worker = { proc, ready }
    hold(worker, false)
    return worker
  }
}
