import type { IncomingMessage } from 'node:http'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import multipart from '@fastify/multipart'
import type { Config } from '../config/load.js'
import { NimaError, multipartError } from '../errors.js'
import { RAW_BODY_MEDIA_TYPES } from '../imaging/formats.js'

/**
 * The one way an HTTP body carrying images is read, for every route that takes an upload
 * (/score, /explain, /labels/images: one image; /rank: many). A route calls
 * `acceptOneImage` or `acceptImageForm` inside its own plugin: that registers the parsers
 * in the route's encapsulated context, with the route's limits, and returns the reader
 * bound to the same limits, so the parsers and the reader never disagree.
 *
 * The limits, one story for all: each image at most BODY_LIMIT_BYTES (a raw body or one
 * file part), a form's images together at most its total (what the upload budget also
 * reserves for the body, src/http/upload-budget.ts), a count of images, the text fields a
 * route names and their size. Busboy's own counts are set one past ours, so the reader,
 * not busboy, meets the first extra part and answers with the route's code and message;
 * busboy's limits only stop a body already refused.
 *
 * After the first fault the reader keeps reading and drops the rest of the body, then
 * throws. Answered at the fault, a form's body stays half-read (busboy stops on the next
 * file part, which nobody consumes), and a client still sending it lost the JSON error to
 * EPIPE (/score, /explain and /labels/images before this reader, with a 4 MiB part after
 * a bad one: test/service/body-reader.test.ts). A client that stalls while its rest is
 * dropped is cut off by BODY_TIMEOUT_MS, as any slow upload is (src/http/timeouts.ts).
 */

/** A limit and the setting that sets it: the error names the setting, so an operator knows what to raise. */
export interface Limit {
  readonly max: number
  readonly setting: string
}

/** The limit named `setting` in the configuration. */
export function configLimit(config: Config, setting: keyof Config & `${string}_${'BYTES' | 'IMAGES'}`): Limit {
  return { max: Number(config[setting]), setting }
}

interface Fields {
  /** The text fields the form may carry besides its images; any other is refused. */
  readonly fields: readonly string[]
  /** The longest value of a text field, in bytes. */
  readonly fieldBytes: number
}

export interface OneImageLimits extends Fields {
  /** The image, raw or as the one file part (BODY_LIMIT_BYTES). */
  readonly imageBytes: Limit
}

export interface ImageFormLimits extends Fields {
  /** Each file part (BODY_LIMIT_BYTES). */
  readonly imageBytes: Limit
  /** File parts `image` in one form, past which NIMA_TOO_MANY_IMAGES (RANK_MAX_IMAGES). */
  readonly images: Limit
  /** All file parts together, past which NIMA_PAYLOAD_TOO_LARGE (RANK_UPLOAD_MAX_BYTES). */
  readonly totalBytes: Limit
}

export interface ImagePart {
  bytes: Buffer
  /** As the client sent it; an empty filename is none. */
  filename?: string
  /** Its position among the form's image parts, from 0. */
  index: number
}

export type FormFields = Readonly<Partial<Record<string, string>>>

export interface ImageForm {
  images: ImagePart[]
  fields: FormFields
}

/** One image's bytes (multipart or raw, with the form's fields), or the route's JSON body with its `url`. */
export type OneImage<Json extends { url: string }> = { bytes: Buffer; fields: FormFields } | Json

/** What the route spreads into its options: the upload budget reserves up to `uploadLimit` for one body. */
export interface BodyRouteOptions {
  bodyLimit: number
  config: { uploadLimit: number }
}

export interface ImageFormReader {
  readonly routeOptions: BodyRouteOptions
  /** The form's images and fields; throws the first fault once the body is read. */
  readForm(request: FastifyRequest): Promise<ImageForm>
}

export interface OneImageReader {
  readonly routeOptions: BodyRouteOptions
  /** Multipart (one file part `image`), a raw image body, or JSON `{url}` (validated by the route's schema). */
  readOne<Json extends { url: string } = { url: string }>(request: FastifyRequest): Promise<OneImage<Json>>
}

const IMAGE_FIELD = 'image'

interface Rules extends Fields {
  imageBytes: Limit
  /** Absent: the route takes one image. */
  images?: Limit
  totalBytes: Limit
}

/** The parsers of a route that takes one image: multipart, the raw image types, and (the app's) JSON. */
export async function acceptOneImage(app: FastifyInstance, limits: OneImageLimits): Promise<OneImageReader> {
  const rules: Rules = { ...limits, totalBytes: limits.imageBytes }
  await register(app, rules, true)
  return {
    routeOptions: routeOptions(rules),
    async readOne<Json extends { url: string }>(request: FastifyRequest): Promise<OneImage<Json>> {
      if (request.isMultipart()) {
        const { images, fields } = await readForm(request, rules)
        return { bytes: images[0]!.bytes, fields }
      }
      if (Buffer.isBuffer(request.body)) return { bytes: request.body, fields: {} }
      const body = request.body as Json | undefined
      if (body && typeof body.url === 'string') return body
      throw new NimaError('NIMA_MISSING_IMAGE', 'send an image as multipart field "image", as a raw image body, or JSON {"url": ...}')
    },
  }
}

/** The parsers of a route that takes a form of images (and JSON, the app's): no raw image body. */
export async function acceptImageForm(app: FastifyInstance, limits: ImageFormLimits): Promise<ImageFormReader> {
  await register(app, limits, false)
  return { routeOptions: routeOptions(limits), readForm: (request) => readForm(request, limits) }
}

function routeOptions(rules: Rules): BodyRouteOptions {
  return { bodyLimit: rules.imageBytes.max, config: { uploadLimit: rules.totalBytes.max } }
}

async function register(app: FastifyInstance, rules: Rules, raw: boolean): Promise<void> {
  const images = rules.images?.max ?? 1
  await app.register(multipart, {
    limits: {
      fileSize: rules.imageBytes.max,
      files: images + 1,
      fields: rules.fields.length + 1,
      parts: images + rules.fields.length + 2,
      fieldSize: rules.fieldBytes,
    },
  })
  // Plain text is never an image: without a parser it is answered 415, not a confusing 400.
  app.removeContentTypeParser('text/plain')
  if (raw) {
    app.addContentTypeParser([...RAW_BODY_MEDIA_TYPES], { parseAs: 'buffer', bodyLimit: rules.imageBytes.max }, (_req, body, done) => done(null, body))
  }
}

async function readForm(request: FastifyRequest, rules: Rules): Promise<ImageForm> {
  const images: ImagePart[] = []
  const fields: Record<string, string> = {}
  let total = 0
  let fault: unknown
  let fieldFault: NimaError | undefined
  let sawFile = false
  try {
    for await (const part of request.parts()) {
      if (part.type === 'file') sawFile = true
      if (fault !== undefined) {
        if (part.type === 'file') part.file.resume()
        continue
      }
      try {
        if (part.type === 'field') {
          const name = part.fieldname
          if (!rules.fields.includes(name)) throw (fieldFault = unexpectedField(name, rules))
          if (name in fields) throw new NimaError('NIMA_INVALID_REQUEST', `field ${JSON.stringify(name)} is sent twice`)
          if (part.valueTruncated) throw new NimaError('NIMA_INVALID_REQUEST', `field ${JSON.stringify(name)} is longer than ${rules.fieldBytes} bytes`)
          // A part sent as application/json arrives parsed: the route parses its fields itself.
          fields[name] = typeof part.value === 'string' ? part.value : JSON.stringify(part.value)
          continue
        }
        if (part.fieldname !== IMAGE_FIELD) {
          throw new NimaError('NIMA_INVALID_REQUEST', `unexpected file field ${JSON.stringify(part.fieldname)}; send each image as a file field named "image"`)
        }
        if (images.length + 1 > (rules.images?.max ?? 1)) throw tooManyImages(images.length + 1, rules)
        const bytes = await part.toBuffer()
        total += bytes.length
        if (total > rules.totalBytes.max) {
          throw new NimaError('NIMA_PAYLOAD_TOO_LARGE', `the uploaded images add up to more than ${rules.totalBytes.setting} (${rules.totalBytes.max} bytes)`)
        }
        images.push({ bytes, ...(part.filename ? { filename: part.filename } : {}), index: images.length })
      } catch (err) {
        fault = err
        if (part.type === 'file' && !part.file.readableEnded) part.file.resume()
      }
    }
  } catch (err) {
    // The parser gave up (a malformed body, one of busboy's limits, the client gone).
    fault ??= err
  }
  if (fault !== undefined) {
    await dropRest(request.raw)
    // A form with no file at all lacks its image before anything else (a stray text field included).
    if (fault === fieldFault && !sawFile) throw missingImage()
    throw bodyError(fault, rules)
  }
  if (images.length === 0) throw missingImage()
  return { images, fields }
}

function missingImage(): NimaError {
  return new NimaError('NIMA_MISSING_IMAGE', 'multipart body has no file field "image"')
}

function unexpectedField(name: string, rules: Rules): NimaError {
  const others = rules.fields.map((f) => JSON.stringify(f)).join(', ')
  return new NimaError(
    'NIMA_INVALID_REQUEST',
    `unexpected field ${JSON.stringify(name)}; the form takes file fields "image"${others ? ` and the text field${rules.fields.length > 1 ? 's' : ''} ${others}` : ''}`,
  )
}

function tooManyImages(sent: number, rules: Rules): NimaError {
  // A one-image route has answered a second image 413 since busboy's files limit did it: clients match on the code.
  if (!rules.images) return new NimaError('NIMA_PAYLOAD_TOO_LARGE', `${sent} images sent; this route takes one`)
  return new NimaError('NIMA_TOO_MANY_IMAGES', `${sent} images sent; ${rules.images.setting} allows ${rules.images.max}`)
}

function bodyError(fault: unknown, rules: Rules): NimaError {
  if ((fault as { code?: unknown }).code === 'FST_REQ_FILE_TOO_LARGE') {
    return new NimaError('NIMA_PAYLOAD_TOO_LARGE', `an image is larger than ${rules.imageBytes.setting} (${rules.imageBytes.max} bytes)`, { cause: fault })
  }
  return multipartError(fault)
}

/** Reads what is left of a body and drops it; settles when it has ended or its connection is gone. */
async function dropRest(raw: IncomingMessage): Promise<void> {
  if (raw.readableEnded || raw.destroyed) return
  // Busboy may be stopped on a part nobody reads: take the body from it.
  raw.unpipe()
  await new Promise<void>((resolve) => {
    const done = () => {
      raw.off('end', done).off('close', done).off('error', done)
      resolve()
    }
    raw.on('end', done).on('close', done).on('error', done)
    raw.resume()
  })
}
