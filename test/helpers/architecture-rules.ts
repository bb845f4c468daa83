import { createRequire } from 'node:module'
import { join } from 'node:path'
import { projectRoot } from './paths.js'

interface Rules {
  LAYERS: readonly { layer: string; rooms: readonly string[] }[]
  ORT_MODULES: readonly string[]
}

/** The layers and rules of .dependency-cruiser.cjs (the source of truth), as they are. */
export function architectureRules(): Rules {
  return createRequire(import.meta.url)(join(projectRoot, '.dependency-cruiser.cjs')) as Rules
}

const code = (s: string) => `\`${s}\``

/** docs/architecture.md's rules section, printed from .dependency-cruiser.cjs. */
export function architectureRulesMarkdown(): string {
  const { LAYERS, ORT_MODULES } = architectureRules()
  return [
    '| layer | rooms, top to bottom (left to right within a layer) |',
    '| --- | --- |',
    ...LAYERS.map((l) => `| ${l.layer} | ${l.rooms.map(code).join(', ')} |`),
    '',
    'Checked by `npm test` (`npm run layers` alone), with type-only imports counted:',
    '',
    '- **down only**: a module imports from its own room and from rooms after it in the table, never from one before it (so `http/` is never imported by `scoring/` or `batch/`, and no two rooms import each other);',
    '- **no circle**: no module imports itself back through others, inside a room too;',
    `- **ONNX Runtime behind the backend**: only ${ORT_MODULES.map(code).join(' and ')} import \`onnxruntime-node\`;`,
    '- **every file in a room**: a file of `src/` outside the rooms listed fails `npm test` until its folder is added.',
  ].join('\n')
}
