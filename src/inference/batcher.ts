import { NimaError } from '../errors.js'
import { recordingContext, type TracedItem } from '../util/tracing.js'

/**
 * Micro-batching: items that arrive while the model is busy, or within `maxWaitMs` of
 * the first waiting item, run together in one call. A lone item never waits longer
 * than `maxWaitMs`; a full batch runs at once.
 *
 * An item submitted with an AbortSignal is dropped if the signal has aborted by the time
 * its batch forms (its promise rejects with `signal.reason` and the next item takes its
 * place); once its batch has started it runs to the end, since a batch cannot drop one of
 * its inputs. The signal is read then, not watched: an 'abort' listener per queued item
 * measurably slowed the service (48 → 44 images/s at 8 connections, bench/RESULTS.md),
 * and an abandoned item waits at most one batch or window before it goes.
 */
export interface BatcherOptions<I, O> {
  maxBatchSize: number
  maxWaitMs: number
  /** Items waiting (not yet running) before `submit` refuses with NIMA_OVERLOADED. */
  maxQueue: number
  /** Runs one batch; must return one output per input, in order. */
  run: (items: I[]) => Promise<O[]>
  /** Called after each batch, for metrics and traces. */
  onBatch?: (info: BatchInfo) => void
  now?: () => number
}

export interface BatchInfo {
  size: number
  queueWaitMs: number[]
  runMs: number
  /** When the run started and ended (`now()`). */
  startedAt: number
  endedAt: number
  /** The items submitted inside a recording trace (src/util/tracing.ts): whose traces show this batch. */
  traced: TracedItem[]
}

interface Pending<I, O> {
  item: I
  enqueuedAt: number
  resolve: (value: O) => void
  reject: (err: unknown) => void
  /** Checked as the batch is formed: an aborted item is rejected there, never run. */
  signal: AbortSignal | undefined
  /** The submitter's trace, when it records: the batch runs in whatever context dispatched it. */
  trace: TracedItem['context'] | undefined
}

export interface Batcher<I, O> {
  /**
   * Queues `item` for the next batch. If `signal` is already aborted, or has aborted when
   * the item's batch forms, the promise rejects with `signal.reason` and the item is never
   * run. Rejects with NIMA_OVERLOADED when `maxQueue` items already wait.
   */
  submit(item: I, signal?: AbortSignal): Promise<O>
  /** Items waiting to run. */
  readonly queueDepth: number
  /** Items inside a running batch. */
  readonly inFlight: number
  /** Resolves once nothing waits or runs. */
  drain(): Promise<void>
}

export function createBatcher<I, O>(options: BatcherOptions<I, O>): Batcher<I, O> {
  const { maxBatchSize, maxWaitMs, maxQueue, run, onBatch } = options
  const now = options.now ?? (() => performance.now())
  const queue: Pending<I, O>[] = []
  let running = 0
  let timer: NodeJS.Timeout | undefined
  let idleWaiters: (() => void)[] = []

  const settleIdle = () => {
    if (queue.length === 0 && running === 0) {
      const waiters = idleWaiters
      idleWaiters = []
      for (const w of waiters) w()
    }
  }

  const dispatch = () => {
    if (timer) {
      clearTimeout(timer)
      timer = undefined
    }
    if (running > 0 || queue.length === 0) return
    const batch: Pending<I, O>[] = []
    while (batch.length < maxBatchSize && queue.length > 0) {
      const p = queue.shift()!
      // Whoever submitted this has gone (or its deadline passed): drop it unrun.
      if (p.signal?.aborted) p.reject(p.signal.reason)
      else batch.push(p)
    }
    if (batch.length === 0) {
      settleIdle()
      return
    }
    running = batch.length
    const started = now()
    run(batch.map((p) => p.item)).then(
      (outputs) => {
        if (outputs.length !== batch.length) {
          const err = new Error(`batch run returned ${outputs.length} outputs for ${batch.length} inputs`)
          for (const p of batch) p.reject(err)
        } else {
          batch.forEach((p, i) => p.resolve(outputs[i]!))
        }
        finish(batch, started)
      },
      (err: unknown) => {
        for (const p of batch) p.reject(err)
        finish(batch, started)
      },
    )
  }

  const finish = (batch: Pending<I, O>[], started: number) => {
    const ended = now()
    running = 0
    const traced: TracedItem[] = []
    for (const p of batch) if (p.trace !== undefined) traced.push({ context: p.trace, enqueuedAt: p.enqueuedAt })
    onBatch?.({ size: batch.length, queueWaitMs: batch.map((p) => started - p.enqueuedAt), runMs: ended - started, startedAt: started, endedAt: ended, traced })
    // Whatever queued during the run has already waited at least one batch: go now.
    dispatch()
    settleIdle()
  }

  return {
    submit(item, signal) {
      if (signal?.aborted) return Promise.reject(signal.reason)
      if (queue.length >= maxQueue) {
        return Promise.reject(
          new NimaError('NIMA_OVERLOADED', `inference queue is full (${maxQueue} images waiting)`, { headers: { 'retry-after': '1' } }),
        )
      }
      return new Promise<O>((resolve, reject) => {
        queue.push({ item, enqueuedAt: now(), resolve, reject, signal, trace: recordingContext() })
        if (running > 0) return
        if (queue.length >= maxBatchSize || maxWaitMs <= 0) dispatch()
        else timer ??= setTimeout(dispatch, maxWaitMs)
      })
    },
    get queueDepth() {
      return queue.length
    },
    get inFlight() {
      return running
    },
    drain() {
      if (queue.length === 0 && running === 0) return Promise.resolve()
      return new Promise<void>((resolve) => idleWaiters.push(resolve))
    },
  }
}
