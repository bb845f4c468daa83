import { createHash } from 'node:crypto'

/**
 * Git's blob id: sha1("blob <size>\0" + content). The idealo weights are pinned by the
 * blob ids GitHub shows for them at a fixed commit, so a download can be checked without
 * trusting any hash published elsewhere.
 */
export function gitBlobSha1(content: Uint8Array): string {
  return createHash('sha1').update(`blob ${content.byteLength}\0`).update(content).digest('hex')
}

export function sha256Hex(content: Uint8Array): string {
  return createHash('sha256').update(content).digest('hex')
}
