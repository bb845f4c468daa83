/**
 * The one way from untrusted bytes to pixels. Every caller that needs pixels — the HTTP
 * routes through the scorer, `batch`, the /explain overlay, the labels (API and CLI),
 * fine-tuning features, the precision check and the conversion proof's photos — asks an
 * ImageAdmission; nothing else decodes (docs/hardening.md).
 *
 * 1. `admit` reads the header before any pixel is decoded (decode-cost.ts): the format
 *    by magic bytes, the pixels against `maxInputPixels`, a JPEG's scans against
 *    `maxJpegScans`, and the bytes the decode will hold; an image that alone needs more
 *    than the memory budget is refused there.
 * 2. `decode` runs it in its lane. A JPEG or PNG whose decode makes at most
 *    `decodeInlineMaxPixels` (its cost bounded by pixels and scans) decodes in this
 *    process, in a lane of its own, so it never waits behind large or hostile images.
 *    Any other image waits in arrival order for room in the memory budget, then for a
 *    decode slot, and with process isolation decodes in a child process that is killed
 *    past `decodeTimeoutMs` (decode-pool.ts).
 *
 * Either lane runs the same function (sampled-decode.ts), and only what the caller asked
 * for comes back (model-size samples, a display copy): full-resolution pixels stay inside
 * the decode.
 */
import { availableParallelism } from 'node:os'
import type { Config } from '../config/load.js'
import { NimaError } from '../errors.js'
import { createLimiter, type Limiter } from '../util/limiter.js'
import { SPAN, traced } from '../util/tracing.js'
import { decodeBytesEstimate, readImageHeader, type ImageHeader } from './decode-cost.js'
import { DecodePool } from './decode-pool.js'
import { fastCover, fastDecodedSize } from './preprocess.js'
import { decodeForRequest, type DecodedPixels, type PixelRequest } from './sampled-decode.js'

export interface AdmissionOptions {
  /** Largest width × height (413 NIMA_IMAGE_TOO_LARGE past it). */
  maxInputPixels: number
  /** Most scans in one JPEG (422 NIMA_TOO_MANY_SCANS past it). Default 100. */
  maxJpegScans?: number
  /**
   * Decodes at once outside the inline lane (and slots of the inline lane): 0 or absent,
   * os.availableParallelism(). Beyond the core count more decodes at once only make each
   * slower (on 2 cores, CPU per image rose from 37 to 45 ms past about 8 at once).
   */
  decodeConcurrency?: number
  /**
   * 'process': images outside the inline lane decode in a pool of `decodeConcurrency`
   * child processes, and a decode past `decodeTimeoutMs` is killed (422
   * NIMA_DECODE_TIMEOUT). 'inline' (default): in this process, unstoppable; kept for
   * comparison benchmarks and unit tests.
   */
  decodeIsolation?: 'process' | 'inline'
  /**
   * Process isolation: JPEG and PNG images of at most this many pixels are decoded in
   * this process all the same. Their cost is bounded by construction (pixels × scans,
   * scans ≤ maxJpegScans; see docs), and for them the round trip to a decode process
   * would cost more than the decode. 0: every image goes to a decode process. Default 0.
   */
  decodeInlineMaxPixels?: number
  /** Process isolation: longest one decode may run. Default 5,000 ms. */
  decodeTimeoutMs?: number
  /**
   * Estimated bytes (decode-cost.ts) the decodes outside the inline lane may hold
   * together; more wait in arrival order, an image estimated above it alone is refused
   * (413). Default: none.
   */
  decodeMemoryBudgetBytes?: number
  /** Process isolation: start the decode processes now (default) or at the first decode that needs one. */
  decodeProcessStart?: 'now' | 'when-needed'
}

/** An image whose header passed: what its decode will cost, and its lane. */
export interface Admitted {
  readonly bytes: Buffer
  /** What the decode is to give: the estimate and the lane follow from it (a fast decode reduces on load). */
  readonly request: PixelRequest
  readonly header: ImageHeader
  /** Estimated bytes the decode holds at its peak (decode-cost.ts decodeBytesEstimate). */
  readonly cost: number
  /** True: the inline lane (an ordinary JPEG or PNG); false: memory budget, decode slot, decode process. */
  readonly inline: boolean
}

export interface DecodeOutcome extends DecodedPixels {
  /** The decode itself, in its lane (not the wait for it). */
  decodeMs: number
}

const NO_BUDGET = Number.MAX_SAFE_INTEGER
const MiB = 1024 * 1024
// Formats whose decode cost the header bounds: pixels (and for JPEG scans, counted).
const INLINE_FORMATS: ReadonlySet<string> = new Set(['jpeg', 'png'])

/** The admission settings of a configuration (src/config/schema.ts) with `decodeConcurrency` slots. */
export function admissionOptions(
  config: Pick<Config, 'MAX_INPUT_PIXELS' | 'JPEG_MAX_SCANS' | 'DECODE_ISOLATION' | 'DECODE_INLINE_MAX_PIXELS' | 'DECODE_TIMEOUT_MS' | 'DECODE_MEMORY_BUDGET_BYTES'>,
  decodeConcurrency: number,
): AdmissionOptions {
  return {
    maxInputPixels: config.MAX_INPUT_PIXELS,
    maxJpegScans: config.JPEG_MAX_SCANS,
    decodeConcurrency,
    decodeIsolation: config.DECODE_ISOLATION,
    decodeInlineMaxPixels: config.DECODE_INLINE_MAX_PIXELS,
    decodeTimeoutMs: config.DECODE_TIMEOUT_MS,
    decodeMemoryBudgetBytes: config.DECODE_MEMORY_BUDGET_BYTES,
  }
}

export class ImageAdmission {
  readonly #options: AdmissionOptions
  readonly #decodeSlots: Limiter
  /** Slots of the in-process lane (bounded-cost JPEG/PNG): as many as the decode slots. */
  readonly #inlineSlots: Limiter
  readonly #decodeMemory: Limiter
  readonly #pool: DecodePool | undefined

  constructor(options: AdmissionOptions) {
    const decodeConcurrency = options.decodeConcurrency ?? 0
    if (!Number.isInteger(decodeConcurrency) || decodeConcurrency < 0) {
      throw new RangeError(`ImageAdmission: decodeConcurrency must be an integer ≥ 0 (0 = os.availableParallelism()), got ${String(options.decodeConcurrency)}`)
    }
    this.#options = options
    this.#decodeSlots = createLimiter(decodeConcurrency === 0 ? availableParallelism() : decodeConcurrency)
    this.#inlineSlots = createLimiter(this.#decodeSlots.limit)
    this.#decodeMemory = createLimiter(options.decodeMemoryBudgetBytes ?? NO_BUDGET)
    // One decode process per decode slot: a slot held always finds an idle process.
    this.#pool =
      options.decodeIsolation === 'process'
        ? new DecodePool({
            size: this.#decodeSlots.limit,
            timeoutMs: options.decodeTimeoutMs ?? 5000,
            maxInputPixels: options.maxInputPixels,
            start: options.decodeProcessStart ?? 'now',
          })
        : undefined
  }

  /** Decodes running (`running`) and waiting for a slot (`waiting`), both lanes, and the limit. */
  get decodes(): { running: number; waiting: number; limit: number } {
    const lanes = [this.#decodeSlots, this.#inlineSlots]
    return { running: lanes.reduce((a, l) => a + l.active, 0), waiting: lanes.reduce((a, l) => a + l.pending, 0), limit: this.#decodeSlots.limit }
  }

  /** Estimated bytes held by decodes in flight, decodes waiting for memory, and the budget. */
  get decodeMemory(): { usedBytes: number; waiting: number; budgetBytes: number } {
    const m = this.#decodeMemory
    return { usedBytes: m.used, waiting: m.pending, budgetBytes: m.limit }
  }

  /** Decode processes (process isolation only): decodes killed on timeout, processes that died mid-decode. */
  get decodeProcesses(): { size: number; busy: number; timeouts: number; crashes: number; recycled: number } | undefined {
    return this.#pool?.stats
  }

  /** Process ids of the decode processes (process isolation; undefined where none runs now). */
  get decodeProcessIds(): (number | undefined)[] {
    return this.#pool?.pids ?? []
  }

  /**
   * Reads the header (pixels, JPEG scans, estimated bytes) and refuses what must never be
   * decoded: too many pixels or scans, an unknown format, more than the whole memory budget.
   * `request` is what the decode will be asked for.
   */
  async admit(bytes: Buffer, request: PixelRequest): Promise<Admitted> {
    const o = this.#options
    const maxScans = o.maxJpegScans ?? 100
    const header = await readImageHeader(bytes, { maxInputPixels: o.maxInputPixels, maxJpegScans: maxScans })
    const cover = request.preprocess === 'fast' ? fastCover(request.sizes, request.preview) : undefined
    const decoded = cover ? fastDecodedSize(header.format, header.width, header.height, cover) : header
    const cost = Math.max(1, Math.ceil(decodeBytesEstimate(header, decoded)))
    const budget = this.#decodeMemory.limit
    if (cost > budget) {
      throw new NimaError(
        'NIMA_IMAGE_TOO_LARGE',
        `Decoding this ${header.width}x${header.height} ${header.format.toUpperCase()} image needs about ${Math.ceil(cost / MiB)} MiB, more than DECODE_MEMORY_BUDGET_BYTES (${Math.floor(budget / MiB)} MiB)`,
      )
    }
    // A photo of ordinary size has a lane of its own: it never waits behind large or
    // hostile images for the memory budget or a decode process. Its memory is bounded by
    // the lane (slots × the largest inline estimate, about 24 MB each), not by the budget:
    // what the decode makes counts, a fast decode's reduced image, but a progressive JPEG's
    // coefficients at full size. Its time is bounded by the scan passes over every block
    // (at most those of a full-size photo with JPEG_MAX_SCANS) and the body's size.
    const inlineMax = o.decodeInlineMaxPixels ?? 0
    const pixels = header.width * header.height
    const made = header.coefficientBytes > 0 ? pixels : decoded.width * decoded.height
    const inline = INLINE_FORMATS.has(header.format) && made <= inlineMax && pixels * header.scans <= inlineMax * maxScans
    return { bytes, request, header, cost, inline }
  }

  /**
   * Decodes an admitted image in its lane, as its request asks: inline, a slot of the
   * inline lane; otherwise room in the memory budget, then a decode slot (and process); in
   * arrival order, left when `signal` fires (rejecting with its reason).
   */
  decode(admitted: Admitted, signal?: AbortSignal): Promise<DecodeOutcome> {
    const { bytes, request } = admitted
    const pool = this.#pool
    const lane = admitted.inline || !pool ? 'inline' : 'process'
    const queuedAt = performance.now()
    // The decode span covers the work only (the child process's included); the wait for a
    // slot is its `queued_ms` attribute.
    const timed = (decode: () => Promise<DecodedPixels>): Promise<DecodeOutcome> =>
      traced(SPAN.decode, () => ({ 'nima.decode.lane': lane, 'nima.decode.queued_ms': Math.round((performance.now() - queuedAt) * 1000) / 1000, 'nima.image.bytes': bytes.length }), async (span) => {
        const started = performance.now()
        const pixels = await decode()
        const { format, width, height } = pixels.image
        span?.setAttributes({ 'nima.image.format': format, 'nima.image.width': width, 'nima.image.height': height, 'nima.image.pixels': width * height })
        return { ...pixels, decodeMs: performance.now() - started }
      })
    const here = () => decodeForRequest(bytes, this.#options.maxInputPixels, request)
    if (admitted.inline) return this.#inlineSlots.run(() => timed(here), signal)
    return this.#decodeMemory.run(
      () => this.#decodeSlots.run(() => timed(pool ? () => pool.decode(bytes, request) : here), signal),
      signal,
      admitted.cost,
    )
  }

  /** `admit`, then `decode`: for callers that need nothing between the two. */
  async pixels(bytes: Buffer, request: PixelRequest, signal?: AbortSignal): Promise<DecodeOutcome> {
    return this.decode(await this.admit(bytes, request), signal)
  }

  /** Stops the decode processes; decodes in flight there fail with 503 NIMA_NOT_READY. */
  async close(): Promise<void> {
    await this.#pool?.close()
  }
}
