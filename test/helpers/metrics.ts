/** The sum of `name`'s samples in a Prometheus text exposition whose labels include each of `labels` (e.g. 'code="NIMA_INTERNAL"'). */
export function metricSample(text: string, name: string, ...labels: string[]): number {
  let sum = 0
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$/.exec(line)
    if (m?.[1] === name && labels.every((l) => (m[2] ?? '').includes(l))) sum += Number(m[3])
  }
  return sum
}
