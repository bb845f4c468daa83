import { join } from 'node:path'
import ts from 'typescript'
import { projectRoot } from '../helpers/paths.js'

/** An object to check against a TypeScript interface: `typeName` exported by `module`. */
export interface TypedValue {
  label: string
  typeName: string
  module: string
  value: unknown
}

/**
 * Unknown fields: the API schemas allow extra properties (as the API server does without
 * strict field validation), so a typo like readOnlyRootFileSystem would pass them. Each
 * value is type-checked as an object literal against its kubernetes-models interface,
 * where TypeScript's excess-property check rejects any field the API does not define.
 * Returns one message per error, starting with the value's label.
 */
export function unknownFieldErrors(values: readonly TypedValue[]): string[] {
  const file = join(projectRoot, 'test/deploy/__rendered_manifests__.ts')
  const imports = new Map<string, string>()
  const lines: string[] = []
  values.forEach((v, i) => {
    imports.set(v.typeName, v.module)
    lines.push(`export const doc${i}: ${v.typeName} = ${JSON.stringify(v.value)}`)
  })
  const source = [...[...imports].map(([name, module]) => `import type { ${name} } from '${module}'`), ...lines].join('\n')
  const options: ts.CompilerOptions = {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    types: [],
  }
  const host = ts.createCompilerHost(options)
  const { getSourceFile, fileExists } = host
  host.getSourceFile = (name, version, ...rest) => (name === file ? ts.createSourceFile(name, source, version) : getSourceFile.call(host, name, version, ...rest))
  host.fileExists = (name) => name === file || fileExists.call(host, name)
  const program = ts.createProgram([file], options, host)
  const sf = program.getSourceFile(file)
  if (!sf) return ['the virtual source file was not created']
  return [...program.getSyntacticDiagnostics(sf), ...program.getSemanticDiagnostics(sf)].map((d) => {
    const line = d.start === undefined ? -1 : sf.getLineAndCharacterOfPosition(d.start).line
    const index = /^export const doc(\d+)/.exec(source.split('\n')[line] ?? '')?.[1]
    const where = index === undefined ? `line ${line + 1}` : values[Number(index)]!.label
    return `${where}: ${ts.flattenDiagnosticMessageText(d.messageText, ' ')}`
  })
}
