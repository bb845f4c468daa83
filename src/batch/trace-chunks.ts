import { SpanStatusCode, type Attributes, type Span } from '@opentelemetry/api'
import { SPAN, startRootSpan, traced, withSpan } from '../util/tracing.js'

/** Consecutive input items in one trace. */
export const TRACE_CHUNK_ITEMS = 256

interface Chunk {
  span: Span
  /** Items started in it, and items of those not finished yet. */
  started: number
  open: number
  lastLine: number
  ended: boolean
}

/**
 * The batch CLI's traces. A run of millions of images is neither one trace nor millions:
 * every TRACE_CHUNK_ITEMS consecutive input items share one, under a root `batch chunk` span
 * (sampled by the configured sampler, like a request), and each item is a `batch item` span
 * in it, over the same fetch, cache, decode, batch-wait and inference spans as a request's.
 * Without an SDK the root span does not record and the items run untouched.
 */
export class TraceChunks {
  readonly #size: number
  #chunk: Chunk | undefined
  #index = 0

  constructor(size = TRACE_CHUNK_ITEMS) {
    this.#size = size
  }

  /**
   * Runs one item's work in its chunk's trace; `describe` turns its result into the item
   * span's attributes (an `error.type` among them marks the span failed).
   */
  run<T>(line: number, fn: () => Promise<T>, describe: (result: T) => Attributes): Promise<T> {
    let chunk = this.#chunk
    if (chunk === undefined || chunk.started >= this.#size) {
      chunk = this.#chunk = { span: startRootSpan(SPAN.batchChunk, { 'nima.batch.chunk': this.#index++, 'nima.batch.first_line': line }), started: 0, open: 0, lastLine: line, ended: false }
    }
    chunk.started += 1
    if (!chunk.span.isRecording()) return fn()
    chunk.open += 1
    chunk.lastLine = Math.max(chunk.lastLine, line)
    const current = chunk
    const item = withSpan(current.span, () =>
      traced(SPAN.batchItem, { 'nima.batch.line': line }, async (span) => {
        const result = await fn()
        const attributes = describe(result)
        span?.setAttributes(attributes)
        if (attributes['error.type'] !== undefined) span?.setStatus({ code: SpanStatusCode.ERROR })
        return result
      }),
    )
    return item.finally(() => {
      current.open -= 1
      if (current.open === 0 && (current.started >= this.#size || current !== this.#chunk)) this.#end(current)
    })
  }

  /** No more items: the last chunk ends once its items have (at once, if they have). */
  close(): void {
    const chunk = this.#chunk
    this.#chunk = undefined
    if (chunk !== undefined && chunk.open === 0) this.#end(chunk)
  }

  #end(chunk: Chunk): void {
    if (chunk.ended) return
    chunk.ended = true
    chunk.span.setAttributes({ 'nima.batch.items': chunk.started, 'nima.batch.last_line': chunk.lastLine })
    chunk.span.end()
  }
}
