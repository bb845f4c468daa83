import { createReadStream } from 'node:fs'
import type { Readable } from 'node:stream'

export interface TextLine {
  /** 1-based line number in the file. */
  number: number
  /** The line without its `\n` (and without a trailing `\r`), or '' when `tooLong`. */
  text: string
  /** Byte offset just past this line's `\n` (or past its last byte at EOF). */
  end: number
  /** False only for a last line that has no `\n`: in a file being appended to, a torn write. */
  terminated: boolean
  /** The line was longer than `maxLineBytes`; its text was dropped unread. */
  tooLong: boolean
}

export interface LineReaderOptions {
  /** Longest line kept, in bytes; longer lines come back with `tooLong` and no text. Default: 1 MiB. */
  maxLineBytes?: number
}

export const DEFAULT_MAX_LINE_BYTES = 1024 * 1024

const NEWLINE = 0x0a
const CR = 0x0d

/**
 * Splits a byte stream into lines with exact byte offsets, in bounded memory: one chunk
 * plus at most `maxLineBytes` of a pending line. readline cannot do either (it has no
 * offsets and buffers a line of any length).
 */
export async function* readLines(source: Readable, options: LineReaderOptions = {}): AsyncGenerator<TextLine> {
  const maxLineBytes = options.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES
  let pending: Buffer[] = []
  let pendingBytes = 0
  let overflow = false
  let offset = 0
  let number = 0

  const take = (tail: Buffer, end: number, terminated: boolean): TextLine => {
    number += 1
    const tooLong = overflow || pendingBytes + tail.length > maxLineBytes
    let text = ''
    if (!tooLong) {
      const whole = pending.length === 0 ? tail : Buffer.concat([...pending, tail])
      const trimmed = whole.length > 0 && whole[whole.length - 1] === CR ? whole.subarray(0, whole.length - 1) : whole
      text = trimmed.toString('utf8')
    }
    pending = []
    pendingBytes = 0
    overflow = false
    return { number, text, end, terminated, tooLong }
  }

  for await (const chunk of source) {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer)
    let start = 0
    for (;;) {
      const nl = buf.indexOf(NEWLINE, start)
      if (nl === -1) break
      yield take(buf.subarray(start, nl), offset + nl + 1, true)
      start = nl + 1
    }
    const rest = buf.subarray(start)
    if (rest.length > 0 && !overflow) {
      if (pendingBytes + rest.length > maxLineBytes) {
        overflow = true
        pending = []
      } else {
        // Copy: the stream may reuse its chunk buffers.
        pending.push(Buffer.from(rest))
      }
      pendingBytes += rest.length
    } else if (overflow) {
      pendingBytes += rest.length
    }
    offset += buf.length
  }
  if (pendingBytes > 0) yield take(Buffer.alloc(0), offset, false)
}

/** {@link readLines} over a file, or over stdin for `-`. */
export function readFileLines(path: string, options: LineReaderOptions = {}): AsyncGenerator<TextLine> {
  const stream = path === '-' ? process.stdin : createReadStream(path, { highWaterMark: 256 * 1024 })
  return readLines(stream, options)
}
