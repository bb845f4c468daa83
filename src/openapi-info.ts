import { RAW_BODY_MEDIA_TYPES } from './imaging/formats.js'

/** The OpenAPI document's header; paths and schemas come from the route schemas. */
export const openapiInfo = {
  openapi: '3.0.3',
  info: {
    title: 'nima-serve',
    version: '0.2.0',
    description:
      'Neural Image Assessment (NIMA) as a service: aesthetic and technical quality distributions over scores 1..10 for a photo, and ranking of a set of photos. Errors are JSON {error: {code, message, requestId}}; match on code.',
    license: { name: 'Apache-2.0' },
  },
  servers: [{ url: 'http://localhost:8080' }],
  // So the interactive page (/docs) has an Authorize button; without API_KEYS the key is ignored.
  components: {
    securitySchemes: {
      apiKey: { type: 'http' as const, scheme: 'bearer', description: 'One of API_KEYS, when the service has keys configured; probes, /metrics and the pages stay open' },
    },
  },
  security: [{}, { apiKey: [] }] as Record<string, string[]>[],
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
