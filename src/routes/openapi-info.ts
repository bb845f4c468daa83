import { RAW_BODY_MEDIA_TYPES } from '../imaging/formats.js'

/** The groups of /docs, in order; every documented route is in one (`tagOf`). */
export const OPENAPI_TAGS = [
  { name: 'scoring', description: 'Score one photo, explain its scores, rank a set of photos' },
  { name: 'models', description: 'The models that serve, and swapping in new versions' },
  { name: 'labelling', description: 'Photos to rate, ratings and their export (only with LABELS_DB)' },
  { name: 'oip', description: 'The Open Inference Protocol (KServe v2 REST) for Triton and KServe clients: metadata, health, /infer (docs/oip.md)' },
  { name: 'operations', description: 'Probes and metrics: always open, never need a key' },
] as const

const TAG_BY_PREFIX: readonly [string, (typeof OPENAPI_TAGS)[number]['name']][] = [
  ['/score', 'scoring'],
  ['/explain', 'scoring'],
  ['/rank', 'scoring'],
  ['/models', 'models'],
  ['/admin/models', 'models'],
  ['/labels', 'labelling'],
  ['/healthz', 'operations'],
  ['/readyz', 'operations'],
  ['/metrics', 'operations'],
  ['/v2', 'oip'],
]

/** The group of a route in /docs; undefined for a route the table does not know (the OpenAPI test fails on it). */
export function tagOf(url: string): string | undefined {
  return TAG_BY_PREFIX.find(([prefix]) => url === prefix || url.startsWith(`${prefix}/`))?.[1]
}

/**
 * The OpenAPI document's header; paths and schemas come from the route schemas. No
 * `servers`: the served copy (/openapi.json, /docs) names the origin it was fetched from
 * (`forRequest`), and a document without servers means "this host" to any tool.
 * With API keys the routes that need one carry the bearer scheme (so /docs has an
 * Authorize button and a lock on them); without keys nothing is locked.
 */
export function openapiInfo(keyed: boolean) {
  return {
    openapi: '3.0.3',
    info: {
      title: 'nima-serve',
      version: '0.2.0',
      description:
        'Neural Image Assessment (NIMA) as a service: aesthetic and technical quality distributions over scores 1..10 for a photo, and ranking of a set of photos. Errors are JSON {error: {code, message, requestId}}; match on code.',
      license: { name: 'Apache-2.0' },
    },
    tags: OPENAPI_TAGS.map((tag) => ({ ...tag })),
    ...(keyed
      ? {
          components: {
            securitySchemes: {
              apiKey: { type: 'http' as const, scheme: 'bearer', description: 'One of API_KEYS; probes, /metrics and the pages stay open' },
            },
          },
          security: [{ apiKey: [] }] as Record<string, string[]>[],
        }
      : {}),
  }
}

/** Per route: its group, and no lock on the public ones (probes, /metrics) when keys are on. */
export function transformRoute(keyed: boolean) {
  return ({ schema, url, route }: { schema?: object; url: string; route: { config?: unknown } }) => {
    const open = keyed && (route.config as { public?: boolean } | undefined)?.public === true
    const tag = tagOf(url)
    return { schema: { ...schema, ...(tag ? { tags: [tag] } : {}), ...(open ? { security: [] } : {}) }, url }
  }
}

/** Drops the groups no route of this service uses (labelling without LABELS_DB), so /docs shows no empty group. */
export function dropUnusedTags(doc: { tags?: { name: string }[]; paths?: Record<string, Record<string, { tags?: string[] }>> }): void {
  const used = new Set(Object.values(doc.paths ?? {}).flatMap((ops) => Object.values(ops).flatMap((op) => op.tags ?? [])))
  if (doc.tags) doc.tags = doc.tags.filter((tag) => used.has(tag.name))
}

/** The document as served to one request: the origin it was asked from is its server. */
export function forRequest<T extends object>(doc: T, origin: string): T & { servers: { url: string }[] } {
  return { ...doc, servers: [{ url: origin, description: 'this service (the host this document was fetched from)' }] }
}

/**
 * Upload bodies are parsed outside fastify's JSON validation (multipart streams, raw
 * buffers), so the route schema only carries the JSON form; the document gets the rest here.
 */
export function addUploadBodies(doc: { paths?: Record<string, any> }): void {
  for (const path of ['/score', '/explain']) {
    const post = doc.paths?.[path]?.post
    if (!post) continue
    const content = (post.requestBody ??= { required: true, content: {} }).content
    content['multipart/form-data'] = {
      schema: { type: 'object', required: ['image'], properties: { image: { type: 'string', format: 'binary', description: 'The image file' } } },
    }
    for (const type of RAW_BODY_MEDIA_TYPES) content[type] = { schema: { type: 'string', format: 'binary' } }
  }
  // OIP inference with the binary tensor data extension: the JSON (Inference-Header-Content-Length
  // bytes) then the raw tensors, in the request and, when an output is binary, in the response.
  for (const [path, item] of Object.entries(doc.paths ?? {})) {
    if (!/^\/v2\/models\/.+\/infer$/.test(path) || !item?.post) continue
    const binary = () => ({
      schema: { type: 'string', format: 'binary', description: 'The JSON object, Inference-Header-Content-Length bytes long, followed by the binary tensor data (docs/oip.md)' },
    })
    const request = (item.post.requestBody ??= { required: true, content: {} }).content
    request['application/octet-stream'] = binary()
    const ok = item.post.responses?.['200']
    if (ok) (ok.content ??= {})['application/octet-stream'] = binary()
  }
  const rank = doc.paths?.['/rank']?.post
  if (rank) {
    const content = (rank.requestBody ??= { required: true, content: {} }).content
    content['multipart/form-data'] = {
      schema: {
        type: 'object',
        required: ['image'],
        properties: {
          image: {
            type: 'array',
            items: { type: 'string', format: 'binary' },
            description: 'One part per photo (at most RANK_MAX_IMAGES, each at most BODY_LIMIT_BYTES, RANK_UPLOAD_MAX_BYTES in all); its filename is echoed as `id`',
          },
          options: { type: 'string', description: 'JSON: the options of the JSON form (weights, models, nearDuplicates, select), without images' },
        },
      },
    }
  }
}
