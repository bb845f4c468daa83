/**
 * The README's runnable parts: its shell blocks, and the sample answer it shows, which
 * scripts/readme-sample.ts writes from a real answer and test/service/readme.test.ts checks
 * against the answer the README's own curl gets.
 */

export const SAMPLE_START = '<!-- readme-sample:score (scripts/readme-sample.ts writes it; test/service/readme.test.ts checks it) -->'
export const SAMPLE_END = '<!-- /readme-sample -->'

/** The text of the `## heading` section, up to the next `## `. */
export function section(markdown: string, heading: string): string {
  const start = markdown.indexOf(`\n## ${heading}\n`)
  if (start < 0) throw new Error(`README has no section "## ${heading}"`)
  const end = markdown.indexOf('\n## ', start + 1)
  return markdown.slice(start, end < 0 ? undefined : end)
}

/** The ```sh blocks of a section, in order. */
export function shellBlocks(text: string): string[] {
  return [...text.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!)
}

/** The sample between the markers, fences included. */
export function committedSample(markdown: string): string {
  const a = markdown.indexOf(SAMPLE_START)
  const b = markdown.indexOf(SAMPLE_END)
  if (a < 0 || b < a) throw new Error('README has no readme-sample markers')
  return markdown.slice(a + SAMPLE_START.length, b).trim()
}

export function withSample(markdown: string, sample: string): string {
  const a = markdown.indexOf(SAMPLE_START)
  const b = markdown.indexOf(SAMPLE_END)
  if (a < 0 || b < a) throw new Error('README has no readme-sample markers')
  return `${markdown.slice(0, a + SAMPLE_START.length)}\n${sample}\n${markdown.slice(b)}`
}

interface ScoreAnswer {
  image: { id: string; width: number; height: number; format: string; bytes: number; preprocess: string; phash: string; phashCrops: string[] }
  scores: Record<string, { mean: number; std: number; distribution: number[] }>
  combined: { score: number; weights: Record<string, number> }
  models: Record<string, { id: string; version: string; task: string; synthetic: boolean; provider: string }>
  cache: { result: string }
}

const r2 = (x: number) => x.toFixed(2)

/**
 * A /score answer as the README shows it: every field in the answer's order, numbers
 * rounded to two decimals, long strings and lists cut with "…", the request id and the
 * timings (different on every call) left out as "…".
 */
export function formatScoreSample(a: ScoreAnswer): string {
  const q = JSON.stringify
  const scores = Object.entries(a.scores).map(
    ([id, s]) => `    ${q(id)}: { "mean": ${r2(s.mean)}, "std": ${r2(s.std)}, "distribution": [${s.distribution.slice(0, 3).map(r2).join(', ')}, …] }`,
  )
  const weights = Object.entries(a.combined.weights).map(([id, w]) => `${q(id)}: ${w}`)
  const models = Object.entries(a.models).map(
    ([id, m]) => `    ${q(id)}: { "id": ${q(m.id)}, "version": ${q(m.version)}, "task": ${q(m.task)}, "synthetic": ${m.synthetic}, "provider": ${q(m.provider)} }`,
  )
  const i = a.image
  return [
    '```json',
    '{',
    '  "requestId": "…",',
    `  "image": { "id": "${i.id.slice(0, 12)}…", "width": ${i.width}, "height": ${i.height}, "format": ${q(i.format)}, "bytes": ${i.bytes}, "preprocess": ${q(i.preprocess)}, "phash": ${q(i.phash)}, "phashCrops": […] },`,
    '  "scores": {',
    scores.join(',\n'),
    '  },',
    `  "combined": { "score": ${r2(a.combined.score)}, "weights": { ${weights.join(', ')} } },`,
    '  "models": {',
    models.join(',\n'),
    '  },',
    `  "cache": { "result": ${q(a.cache.result)} },`,
    '  "timings": { "decodeMs": …, "inferenceMs": …, "totalMs": … }',
    '}',
    '```',
  ].join('\n')
}

/** Splits concatenated JSON documents (curl prints one after another without a newline). */
export function splitJson(text: string): unknown[] {
  const out: unknown[] = []
  let depth = 0
  let start = -1
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const c = text[i]
    if (inString) {
      if (c === '\\') i++
      else if (c === '"') inString = false
      continue
    }
    if (c === '"') inString = true
    else if (c === '{' || c === '[') {
      if (depth++ === 0) start = i
    } else if (c === '}' || c === ']') {
      if (--depth === 0) out.push(JSON.parse(text.slice(start, i + 1)))
    }
  }
  return out
}
