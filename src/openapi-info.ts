/** The OpenAPI document's header; paths and schemas come from the route schemas. */
export const openapiInfo = {
  openapi: '3.0.3',
  info: {
    title: 'nima-serve',
    version: '0.1.0',
    description:
      'Neural Image Assessment (NIMA) as a service: aesthetic and technical quality distributions over scores 1..10 for a photo, and ranking of a set of photos. Errors are JSON {error: {code, message, requestId}}; match on code.',
    license: { name: 'Apache-2.0' },
  },
  servers: [{ url: 'http://localhost:8080' }],
}
