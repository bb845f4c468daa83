/**
 * Generator of hostile requests for POST /score and /rank. Each case says what a client
 * must get back: a documented status and error code (or 200 where the input is odd but
 * legitimate, e.g. a valid photo with junk appended). Deterministic: same corpus every run.
 */
import { readFileSync } from 'node:fs'
import { basename } from 'node:path'
import { deflateSync } from 'node:zlib'
import { manyScanJpeg } from '../helpers/many-scan-jpeg.js'
import { samplePhotos } from '../helpers/paths.js'
import { truncatedTiffs } from '../helpers/tiff-strips.js'

export interface HostileCase {
  name: string
  path: '/score' | '/rank'
  method?: string
  headers: Record<string, string>
  body: Buffer | string
  /** Acceptable outcomes: [status, error code or 'ok'] */
  expect: readonly (readonly [number, string])[]
}

/** Upstream paths the test server must implement for URL cases. */
export interface UpstreamUrls {
  base: string
}

function seededBytes(seed: number, n: number): Buffer {
  let s = seed >>> 0
  const out = Buffer.alloc(n)
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) >>> 0
    let z = s
    z = Math.imul(z ^ (z >>> 15), z | 1)
    z ^= z + Math.imul(z ^ (z >>> 7), z | 61)
    out[i] = ((z ^ (z >>> 14)) >>> 0) & 0xff
  }
  return out
}

const crcTable = Array.from({ length: 256 }, (_, n) => {
  let c = n
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1
  return c >>> 0
})
function crc32(buf: Buffer): number {
  let c = 0xffffffff
  for (const b of buf) c = crcTable[(c ^ b) & 0xff]! ^ (c >>> 8)
  return (c ^ 0xffffffff) >>> 0
}
function pngChunk(type: string, data: Buffer): Buffer {
  const len = Buffer.alloc(4)
  len.writeUInt32BE(data.length)
  const td = Buffer.concat([Buffer.from(type, 'ascii'), data])
  const crc = Buffer.alloc(4)
  crc.writeUInt32BE(crc32(td))
  return Buffer.concat([len, td, crc])
}

/** A well-formed PNG header claiming width x height, with a tiny (inconsistent) IDAT. */
export function pngClaiming(width: number, height: number): Buffer {
  const ihdr = Buffer.alloc(13)
  ihdr.writeUInt32BE(width, 0)
  ihdr.writeUInt32BE(height, 4)
  ihdr[8] = 8 // bit depth
  ihdr[9] = 2 // RGB
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', ihdr),
    pngChunk('IDAT', deflateSync(Buffer.alloc(1024))),
    pngChunk('IEND', Buffer.alloc(0)),
  ])
}

/** A JPEG with an oversized APP1 "Exif" segment of junk IFD data inserted after SOI. */
function jpegWithHugeExif(jpeg: Buffer, segments: number): Buffer {
  const parts = [jpeg.subarray(0, 2)]
  for (let i = 0; i < segments; i++) {
    const payload = Buffer.concat([Buffer.from('Exif\0\0MM\0*\0\0\0\x08', 'latin1'), seededBytes(1000 + i, 65000)])
    const header = Buffer.from([0xff, 0xe1, 0, 0])
    header.writeUInt16BE(payload.length + 2, 2)
    parts.push(header, payload)
  }
  parts.push(jpeg.subarray(2))
  return Buffer.concat(parts)
}

const raw = (type: string) => ({ 'content-type': type })
const json = { 'content-type': 'application/json' }

function multipart(boundary: string, parts: { name: string; filename?: string; type?: string; body: Buffer | string }[]): Buffer {
  const chunks: Buffer[] = []
  for (const p of parts) {
    chunks.push(
      Buffer.from(
        `--${boundary}\r\nContent-Disposition: form-data; name="${p.name}"${p.filename ? `; filename="${p.filename}"` : ''}\r\n` +
          (p.type ? `Content-Type: ${p.type}\r\n` : '') +
          '\r\n',
      ),
      Buffer.isBuffer(p.body) ? p.body : Buffer.from(p.body),
      Buffer.from('\r\n'),
    )
  }
  chunks.push(Buffer.from(`--${boundary}--\r\n`))
  return Buffer.concat(chunks)
}

export function hostileCorpus(up: UpstreamUrls): HostileCase[] {
  const cases: HostileCase[] = []
  const add = (c: Omit<HostileCase, 'path'> & { path?: HostileCase['path'] }) => cases.push({ path: '/score', ...c })
  const UNSUPPORTED = [415, 'NIMA_UNSUPPORTED_MEDIA_TYPE'] as const
  const UNDECODABLE = [422, 'NIMA_UNDECODABLE_IMAGE'] as const
  const photos = samplePhotos()

  // Random bytes of several sizes, under several claimed types.
  for (const [i, n] of [1, 7, 64, 1000, 65536, 500_000].entries()) {
    add({ name: `random ${n} bytes`, headers: raw(['image/jpeg', 'image/png', 'application/octet-stream'][i % 3]!), body: seededBytes(i + 1, n), expect: [UNSUPPORTED] })
  }
  // Valid magic followed by garbage: recognised format, undecodable content.
  for (const [fmt, magic] of [['jpeg', [0xff, 0xd8, 0xff, 0xe0]], ['png', [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]], ['gif', [...Buffer.from('GIF89a')]], ['webp', [...Buffer.from('RIFF\0\0\0\0WEBPVP8 ')]], ['tiff', [0x49, 0x49, 0x2a, 0x00]]] as const) {
    add({ name: `${fmt} magic + garbage`, headers: raw('application/octet-stream'), body: Buffer.concat([Buffer.from(magic), seededBytes(77, 4000)]), expect: [UNDECODABLE] })
  }
  // Truncations of every sample photo at several offsets.
  for (const path of photos) {
    const bytes = readFileSync(path)
    for (const frac of [0.05, 0.33, 0.7, 0.95]) {
      const cut = Math.max(16, Math.floor(bytes.length * frac))
      add({ name: `${basename(path)} truncated at ${cut}/${bytes.length}`, headers: raw('image/jpeg'), body: bytes.subarray(0, cut), expect: [UNDECODABLE] })
    }
  }
  add({ name: 'zero-length raw body', headers: raw('image/png'), body: Buffer.alloc(0), expect: [[400, 'NIMA_MISSING_IMAGE']] })
  add({ name: 'zero-length JSON body', headers: json, body: '', expect: [[400, 'NIMA_INVALID_REQUEST']] })
  const photo = readFileSync(photos[0]!)
  add({ name: 'image under an unaccepted Content-Type', headers: raw('application/xml'), body: photo, expect: [UNSUPPORTED] })
  add({ name: 'image with no Content-Type', headers: {}, body: photo, expect: [UNSUPPORTED, [400, 'NIMA_MISSING_IMAGE']] })
  add({ name: 'PNG claiming 50,000 x 50,000 pixels', headers: raw('image/png'), body: pngClaiming(50_000, 50_000), expect: [[413, 'NIMA_IMAGE_TOO_LARGE']] })
  add({ name: 'PNG claiming 2^31-1 x 2^31-1 pixels', headers: raw('image/png'), body: pngClaiming(0x7fffffff, 0x7fffffff), expect: [[413, 'NIMA_IMAGE_TOO_LARGE'], UNDECODABLE] })
  // Decode cost (issue #12): legal progressive JPEGs with every scan the standard allows
  // (2,647; 11 s of decoding at 4000x4000 before JPEG_MAX_SCANS), refused from the bytes.
  add({ name: 'progressive JPEG with 2,647 scans, 4000x4000 (192 KB)', headers: raw('image/jpeg'), body: manyScanJpeg({ width: 4000, height: 4000 }), expect: [[422, 'NIMA_TOO_MANY_SCANS']] })
  add({ name: 'progressive JPEG with 2,647 scans, 8000x8000 (685 KB)', headers: raw('image/jpeg'), body: manyScanJpeg({ width: 8000, height: 8000 }), expect: [[413, 'NIMA_IMAGE_TOO_LARGE'], [422, 'NIMA_TOO_MANY_SCANS']] })
  add({ name: 'JPEG frame 65535 pixels wide (past libjpeg-turbo\'s 65500)', headers: raw('image/jpeg'), body: manyScanJpeg({ width: 65535, height: 8, maxScans: 1 }), expect: [[413, 'NIMA_IMAGE_TOO_LARGE']] })
  // Truncated TIFFs (issue #12): libvips only warned and read the gap as black.
  for (const { name, bytes } of truncatedTiffs()) add({ name, headers: raw('image/tiff'), body: bytes, expect: [UNDECODABLE] })
  add({ name: 'PNG claiming 0 x 0 pixels', headers: raw('image/png'), body: pngClaiming(0, 0), expect: [UNDECODABLE] })
  // Huge EXIF: junk IFDs in the maximum APP1 size, repeated. The photo itself is valid,
  // so it is scored: the junk must neither crash nor stall the decoder.
  add({ name: 'JPEG with 1 MB of junk EXIF segments', headers: raw('image/jpeg'), body: jpegWithHugeExif(readFileSync(photos.find((p) => p.endsWith('.jpg'))!), 16), expect: [[200, 'ok']] })
  // Polyglots.
  add({ name: 'GIF/JavaScript polyglot', headers: raw('image/gif'), body: Buffer.from('GIF89a/*\x00\x00\x00\x00*/=alert(document.domain);//;'), expect: [UNDECODABLE] })
  add({ name: 'JPEG with a ZIP archive appended', headers: raw('image/jpeg'), body: Buffer.concat([readFileSync(photos.find((p) => p.endsWith('.jpg'))!), Buffer.from('PK\x03\x04'), seededBytes(5, 2000)]), expect: [[200, 'ok']] })
  add({ name: 'PDF header, then a JPEG', headers: raw('image/jpeg'), body: Buffer.concat([Buffer.from('%PDF-1.4\n'), photo]), expect: [UNSUPPORTED] })
  add({ name: 'HTML with an SVG', headers: raw('image/svg+xml'), body: '<svg xmlns="http://www.w3.org/2000/svg"><image href="file:///etc/passwd"/></svg>', expect: [UNSUPPORTED] })
  add({ name: 'SVG sent as octet-stream', headers: raw('application/octet-stream'), body: '<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"><image href="http://169.254.169.254/"/></svg>', expect: [UNSUPPORTED] })
  add({ name: 'BMP', headers: raw('application/octet-stream'), body: Buffer.concat([Buffer.from('BM'), seededBytes(9, 200)]), expect: [UNSUPPORTED] })
  // Multipart abuse.
  const inner = multipart('inner', [{ name: 'image', filename: 'a.jpg', type: 'image/jpeg', body: photo }])
  add({ name: 'nested multipart (the image part is itself multipart)', headers: { 'content-type': 'multipart/form-data; boundary=outer' }, body: multipart('outer', [{ name: 'image', filename: 'x', type: 'multipart/form-data; boundary=inner', body: inner }]), expect: [UNSUPPORTED] })
  add({ name: 'multipart with two image files', headers: { 'content-type': 'multipart/form-data; boundary=b' }, body: multipart('b', [{ name: 'image', filename: 'a.jpg', body: photo }, { name: 'image', filename: 'b.jpg', body: photo }]), expect: [[413, 'NIMA_PAYLOAD_TOO_LARGE']] })
  add({ name: 'multipart without a boundary', headers: { 'content-type': 'multipart/form-data' }, body: photo, expect: [UNSUPPORTED, [400, 'NIMA_INVALID_REQUEST']] })
  add({ name: 'multipart cut short', headers: { 'content-type': 'multipart/form-data; boundary=b' }, body: multipart('b', [{ name: 'image', filename: 'a.jpg', body: photo }]).subarray(0, 5000), expect: [[400, 'NIMA_INVALID_REQUEST'], UNDECODABLE] })
  add({ name: 'multipart with only text fields', headers: { 'content-type': 'multipart/form-data; boundary=b' }, body: multipart('b', [{ name: 'image', body: 'not a file' }]), expect: [[400, 'NIMA_MISSING_IMAGE']] })
  // JSON with wrong types and shapes.
  for (const [name, body] of [
    ['url is a number', { url: 1 }],
    ['url is null', { url: null }],
    ['url is an array', { url: ['http://a/'] }],
    ['url is an object', { url: { href: 'http://a/' } }],
    ['url empty', { url: '' }],
    ['weights negative', { url: 'http://example.com/a.jpg', weights: { aesthetic: -1 } }],
    ['weights not numbers', { url: 'http://example.com/a.jpg', weights: { aesthetic: 'high' } }],
    ['JSON array', [1, 2, 3]],
    ['JSON string', 'http://example.com/a.jpg'],
    ['JSON null', null],
    ['prototype pollution attempt', JSON.parse('{"url":"http://example.com/a.jpg","__proto__":{"polluted":true}}')],
  ] as const) {
    add({ name: `JSON: ${name}`, headers: json, body: JSON.stringify(body), expect: [[400, 'NIMA_INVALID_REQUEST'], [400, 'NIMA_MISSING_IMAGE']] })
  }
  add({ name: 'JSON nested 10,000 deep', headers: json, body: '['.repeat(10000) + ']'.repeat(10000), expect: [[400, 'NIMA_INVALID_REQUEST'], [400, 'NIMA_MISSING_IMAGE']] })
  add({ name: 'JSON with a 5 MB url', headers: json, body: JSON.stringify({ url: 'http://example.com/' + 'a'.repeat(5_000_000) }), expect: [[413, 'NIMA_PAYLOAD_TOO_LARGE'], [400, 'NIMA_INVALID_REQUEST']] })
  add({ name: 'JSON syntax error', headers: json, body: '{"url": "http://x/",', expect: [[400, 'NIMA_INVALID_REQUEST']] })
  for (const [name, body] of [
    ['images not an array', { images: 'x' }],
    ['image without url', { images: [{ id: 'a' }] }],
    ['image url a number', { images: [{ url: 7 }] }],
    ['unknown field', { images: [{ url: 'http://a/' }], extra: true }],
  ] as const) {
    add({ name: `rank JSON: ${name}`, path: '/rank', headers: json, body: JSON.stringify(body), expect: [[400, 'NIMA_INVALID_REQUEST']] })
  }
  // URLs to refused addresses (no connection is ever made to them).
  const BLOCKED = [400, 'NIMA_URL_BLOCKED'] as const
  for (const url of [
    'http://localhost:1/a.jpg', 'http://[::1]/a.jpg', 'http://[::ffff:127.0.0.1]/a.jpg', 'http://0.0.0.0/a.jpg', 'http://10.0.0.1/a.jpg',
    'http://172.16.5.4/a.jpg', 'http://192.168.1.1/a.jpg', 'http://169.254.169.254/latest/meta-data/', 'http://100.64.0.1/a.jpg',
    'http://224.0.0.1/a.jpg', 'http://[fd00::1]/a.jpg', 'http://[fe80::1]/a.jpg', 'http://2130706433/a.jpg', 'http://0x7f000001/a.jpg',
  ]) {
    add({ name: `URL to refused address ${url}`, headers: json, body: JSON.stringify({ url }), expect: [BLOCKED] })
  }
  for (const url of ['file:///etc/passwd', 'ftp://example.com/a.jpg', 'gopher://example.com/', 'data:image/png;base64,AAAA', 'http://user:pass@example.com/a.jpg', 'not a url', 'http://']) {
    add({ name: `invalid URL ${url}`, headers: json, body: JSON.stringify({ url }), expect: [[400, 'NIMA_URL_INVALID']] })
  }
  // Upstream behaviours (served by the test's own upstream on 127.0.0.1, which is allowlisted).
  for (const target of ['http://10.0.0.1/a.jpg', 'http://169.254.169.254/', 'http://[::1]:80/a.jpg', 'http://localhost/a.jpg']) {
    add({ name: `redirect to refused ${target}`, headers: json, body: JSON.stringify({ url: `${up.base}/redirect?to=${encodeURIComponent(target)}` }), expect: [BLOCKED] })
  }
  add({ name: 'redirect to file:', headers: json, body: JSON.stringify({ url: `${up.base}/redirect?to=${encodeURIComponent('file:///etc/passwd')}` }), expect: [[400, 'NIMA_URL_INVALID']] })
  add({ name: 'redirect loop', headers: json, body: JSON.stringify({ url: `${up.base}/loop` }), expect: [[502, 'NIMA_TOO_MANY_REDIRECTS']] })
  add({ name: 'slow-loris upstream (headers never sent)', headers: json, body: JSON.stringify({ url: `${up.base}/hang` }), expect: [[504, 'NIMA_UPSTREAM_TIMEOUT']] })
  add({ name: 'trickling upstream body', headers: json, body: JSON.stringify({ url: `${up.base}/trickle` }), expect: [[504, 'NIMA_UPSTREAM_TIMEOUT']] })
  add({ name: 'endless upstream body', headers: json, body: JSON.stringify({ url: `${up.base}/endless` }), expect: [[413, 'NIMA_URL_TOO_LARGE']] })
  add({ name: 'upstream lies about Content-Length', headers: json, body: JSON.stringify({ url: `${up.base}/huge-length` }), expect: [[413, 'NIMA_URL_TOO_LARGE']] })
  add({ name: 'upstream serves HTML', headers: json, body: JSON.stringify({ url: `${up.base}/html` }), expect: [UNSUPPORTED] })
  add({ name: 'upstream 500', headers: json, body: JSON.stringify({ url: `${up.base}/error` }), expect: [[502, 'NIMA_UPSTREAM_FAILED']] })
  add({ name: 'upstream resets the connection', headers: json, body: JSON.stringify({ url: `${up.base}/reset` }), expect: [[502, 'NIMA_UPSTREAM_FAILED']] })
  add({ name: 'rank: every URL hostile', path: '/rank', headers: json, body: JSON.stringify({ images: [{ url: `${up.base}/hang` }, { url: `${up.base}/endless` }, { url: 'http://10.0.0.1/' }, { url: `${up.base}/html` }] }), expect: [[200, 'ok']] })
  return cases
}
