import { createRequire } from 'node:module'

/** package.json sits two folders up from both src/cli and dist/cli. */
export function version(): string {
  return (createRequire(import.meta.url)('../../package.json') as { version: string }).version
}
