import { NimaError } from '../errors.js'

/** Rejects with NIMA_DEADLINE_EXCEEDED if `work` is not done by the time `signal` aborts. */
export function withDeadline<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(deadlineError())
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(deadlineError())
    signal.addEventListener('abort', onAbort, { once: true })
    work.then(
      (v) => {
        signal.removeEventListener('abort', onAbort)
        resolve(v)
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort)
        reject(e)
      },
    )
  })
}

export function deadlineError(): NimaError {
  return new NimaError('NIMA_DEADLINE_EXCEEDED', undefined, { headers: { 'retry-after': '1' } })
}
