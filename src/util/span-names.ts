/** Every span the service makes, by name (src/util/tracing.ts makes them); docs/observability.md lists their attributes. */
export const SPAN = {
  /** An image URL, from the wait for its host's slot to the last body byte (redirects and 304s included). */
  fetch: 'image fetch',
  /** The score cache asked for an image's scores (memory, then Redis) or for a URL's record. */
  cacheLookup: 'cache lookup',
  /** An ordinary photo waiting as bytes for admission into decode-batch-infer (PIPELINE_MAX_IMAGES); only when it waited. */
  admissionWait: 'admission wait',
  /** Decode and preprocessing in its lane; the decode process's work is inside it. */
  decode: 'decode',
  /** One image's tensor waiting in a model's micro-batcher for its batch to start. */
  batchWait: 'batch wait',
  /** The session.run that served this image, one span per image of the batch (name: `inference <model id>`). */
  inference: 'inference',
  /** The batch CLI: a root span per chunk of input items (one trace per chunk). */
  batchChunk: 'batch chunk',
  /** The batch CLI: one input item, from its read or fetch to its scores. */
  batchItem: 'batch item',
} as const
