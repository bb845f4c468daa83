import { ConfigSchema } from '../../src/config/schema.js'

export function configTable(): string {
  const rows = Object.entries(ConfigSchema.properties).map(([key, s]) => {
    const schema = s as { default?: unknown; description?: string }
    const def = schema.default === '' ? '(empty)' : `\`${String(schema.default)}\``
    return `| \`${key}\` | ${def} | ${schema.description ?? ''} |`
  })
  return ['| Variable | Default | Meaning |', '| --- | --- | --- |', ...rows].join('\n')
}
