import { execFileSync } from 'node:child_process'
import { accessSync, constants, readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { delimiter, join } from 'node:path'
import { parser } from '@prometheus-io/lezer-promql'
import { parse as parseYaml, parseAllDocuments } from 'yaml'
import { projectRoot, sharedImages } from '../helpers/paths.js'
import { startUpstream } from '../helpers/service.js'

/** Shared by the deploy tests: repository files, PromQL parsing, tool lookup, traffic. */

export const repo = (...parts: string[]): string => join(projectRoot, ...parts)

export function readYaml<T = any>(...parts: string[]): T {
  return parseYaml(readFileSync(repo(...parts), 'utf8')) as T
}

export function parseYamlDocuments(text: string): any[] {
  return parseAllDocuments(text).map((doc) => {
    if (doc.errors.length > 0) throw new Error(`YAML: ${doc.errors.map((e) => e.message).join('; ')}`)
    return doc.toJS()
  }).filter((d) => d !== null && d !== undefined)
}

// ---------------------------------------------------------------------------------------
// Tools

/** An executable on PATH (or at one of `extra`), or undefined. */
export function findExecutable(name: string, extra: string[] = []): string | undefined {
  const candidates = [...extra, ...(process.env['PATH'] ?? '').split(delimiter).filter(Boolean).map((dir) => join(dir, name))]
  for (const path of candidates) {
    try {
      accessSync(path, constants.X_OK)
      return path
    } catch {
      // next
    }
  }
  return undefined
}

/**
 * What a test file does when a system tool is missing: in CI (CI set) it fails, since
 * .ci/run installs the tool; on a developer machine it skips the file, saying why.
 */
export function missingTool(t: { fail(...args: any[]): unknown; plan(...args: any[]): unknown }, what: string, hint: string): void {
  const reason = `${what} not found (${hint})`
  if (process.env['CI']) t.fail(`${reason}; CI (CI=${process.env['CI']}) must have it`)
  else t.plan(0, `skipped outside CI: ${reason}`)
}

/** A real kustomize: a standalone `kustomize`, or kubectl's built-in one when it is v4 or newer. */
export function findKustomize(): { command: string; args: string[]; version: string } | { missing: string } {
  const standalone = findExecutable('kustomize')
  if (standalone) {
    const version = execFileSync(standalone, ['version'], { encoding: 'utf8' }).trim()
    return { command: standalone, args: ['build'], version: `kustomize ${version}` }
  }
  const kubectl = findExecutable('kubectl')
  if (!kubectl) return { missing: 'neither kustomize nor kubectl is on PATH' }
  let text: string
  try {
    text = execFileSync(kubectl, ['version', '--client'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] })
  } catch (err) {
    return { missing: `kubectl version --client failed: ${err instanceof Error ? err.message : String(err)}` }
  }
  const match = /Kustomize Version:\s*v?(\d+)\.(\d+)\.(\d+)/.exec(text)
  if (!match) return { missing: `kubectl (${text.trim().split('\n')[0]}) reports no kustomize version` }
  if (Number(match[1]) < 4) return { missing: `kubectl's kustomize v${match[1]}.${match[2]} is older than v4 (manifests use resources: ../../base and patches:)` }
  return { command: kubectl, args: ['kustomize'], version: `kubectl ${text.trim().split('\n')[0]}; kustomize v${match[1]}.${match[2]}.${match[3]}` }
}

// ---------------------------------------------------------------------------------------
// PromQL

/** Grafana and prometheus-adapter placeholders replaced by values PromQL accepts. */
export function substituteGrafanaVariables(expr: string, rateInterval = '1m'): string {
  return expr
    .replaceAll('$__rate_interval', rateInterval)
    .replaceAll('$__interval', rateInterval)
    .replaceAll('$__range', rateInterval)
    .replace(/\$\{?(job|instance)\}?/g, '.+')
}

/** A prometheus-adapter metricsQuery template rendered for one series and its label matchers. */
export function renderAdapterQuery(template: string, series: string, labelMatchers: string, groupBy: string): string {
  return template.replaceAll('<<.Series>>', series).replaceAll('<<.LabelMatchers>>', labelMatchers).replaceAll('<<.GroupBy>>', groupBy)
}

export interface SelectorUse {
  metric: string
  /** Label names used in the selector's matchers (e.g. route, status_code). */
  labels: string[]
}

function text(expr: string, node: { from: number; to: number }): string {
  return expr.slice(node.from, node.to)
}

/**
 * Every metric selector in a PromQL expression, found with Prometheus' own lezer grammar
 * (@prometheus-io/lezer-promql). Throws on a syntax error, so an expression that would not
 * run in Prometheus fails here too.
 */
export function promqlSelectors(expr: string): SelectorUse[] {
  const tree = parser.parse(expr)
  const errors: number[] = []
  const out: SelectorUse[] = []
  tree.iterate({
    enter(ref) {
      if (ref.type.isError) errors.push(ref.from)
      if (ref.name !== 'VectorSelector') return
      const node = ref.node
      const labels: string[] = []
      let metric: string | undefined
      const id = node.getChild('Identifier')
      if (id) metric = text(expr, id)
      const matchers = node.getChild('LabelMatchers')
      for (const m of matchers?.getChildren('UnquotedLabelMatcher') ?? []) {
        const name = m.getChild('LabelName')
        if (!name) continue
        const label = text(expr, name)
        const value = m.getChild('StringLiteral')
        if (label === '__name__' && m.getChild('MatchOp')?.getChild('EqlSingle') && value) metric = JSON.parse(text(expr, value)) as string
        else labels.push(label)
      }
      if (metric === undefined) throw new Error(`PromQL selector without a metric name in ${JSON.stringify(expr)}: ${text(expr, node)}`)
      out.push({ metric, labels })
    },
  })
  if (errors.length > 0) {
    const at = errors[0] ?? 0
    throw new Error(`PromQL syntax error at offset ${at} in ${JSON.stringify(expr)} (near ${JSON.stringify(expr.slice(Math.max(0, at - 10), at + 10))})`)
  }
  return out
}

/** Metric names used by a PromQL expression. */
export function promqlMetricNames(expr: string): string[] {
  return [...new Set(promqlSelectors(expr).map((s) => s.metric))]
}

/** Series that Prometheus makes itself, never exposed by a target. */
export const PROMETHEUS_SYNTHETIC_SERIES = new Set(['up', 'scrape_duration_seconds', 'scrape_samples_scraped', 'ALERTS', 'ALERTS_FOR_STATE'])

/** Labels Prometheus attaches when scraping (static config, or prometheus-operator in Kubernetes). */
export const TARGET_LABELS = new Set(['job', 'instance', 'namespace', 'pod', 'service', 'container', 'endpoint'])

// ---------------------------------------------------------------------------------------
// The deploy files' PromQL

export interface Expression {
  source: string
  expr: string
}

/** Every PromQL expression of the Grafana dashboard (panel targets and variable queries). */
export function dashboardExpressions(): Expression[] {
  const dashboard = JSON.parse(readFileSync(repo('deploy/grafana/dashboards/nima-serve.json'), 'utf8')) as any
  const out: Expression[] = []
  const walk = (panels: any[]) => {
    for (const panel of panels) {
      for (const target of panel.targets ?? []) {
        if (typeof target.expr === 'string') out.push({ source: `dashboard panel "${panel.title}" ${target.refId}`, expr: target.expr })
      }
      walk(panel.panels ?? [])
    }
  }
  walk(dashboard.panels ?? [])
  for (const variable of dashboard.templating?.list ?? []) {
    if (variable.type !== 'query') continue
    const query: string = typeof variable.query === 'string' ? variable.query : variable.query?.query
    out.push({ source: `dashboard variable $${variable.name}`, expr: labelValuesSelector(query) })
  }
  return out
}

/** The series selector inside Grafana's label_values(selector, label) (or the query itself). */
export function labelValuesSelector(query: string): string {
  const match = /^label_values\((.*),\s*[a-zA-Z_][a-zA-Z0-9_]*\s*\)$/.exec(query.trim())
  if (!match?.[1]) throw new Error(`dashboard variable query is not label_values(<selector>, <label>): ${query}`)
  return match[1]
}

/** Every alert rule expression of deploy/prometheus/alerts.yml. */
export function alertExpressions(): (Expression & { alert: string })[] {
  const doc = readYaml('deploy/prometheus/alerts.yml')
  return (doc.groups as any[]).flatMap((g) =>
    (g.rules as any[]).map((r) => ({ source: `alert ${r.alert ?? r.record}`, alert: String(r.alert ?? r.record), expr: String(r.expr) })),
  )
}

export interface AdapterRule {
  seriesQuery: string
  metricsQuery: string
  /** The name the custom metrics API serves. */
  servedName: string
}

/** The prometheus-adapter rules of deploy/prometheus-adapter/values.yaml. */
export function adapterRules(): AdapterRule[] {
  const values = readYaml('deploy/prometheus-adapter/values.yaml')
  return (values.rules.custom as any[]).map((rule) => {
    const series = promqlMetricNames(rule.seriesQuery)
    if (series.length !== 1) throw new Error(`adapter seriesQuery must select one metric: ${rule.seriesQuery}`)
    const seriesName = series[0] as string
    let servedName = seriesName
    if (rule.name?.matches !== undefined) {
      servedName = seriesName.replace(new RegExp(rule.name.matches as string), (rule.name.as as string | undefined) ?? '$0')
    }
    return { seriesQuery: String(rule.seriesQuery), metricsQuery: String(rule.metricsQuery), servedName }
  })
}

/** The adapter rules' PromQL as the adapter would run it for one pod. */
export function adapterExpressions(): Expression[] {
  return adapterRules().flatMap((rule) => {
    const series = promqlMetricNames(rule.seriesQuery)[0] as string
    return [
      { source: `adapter seriesQuery for ${rule.servedName}`, expr: rule.seriesQuery },
      { source: `adapter metricsQuery for ${rule.servedName}`, expr: renderAdapterQuery(rule.metricsQuery, series, 'namespace="default",pod="nima-serve-0"', 'pod') },
    ]
  })
}

/** The custom (Pods/Object/External) metric names the HPA reads. */
export function hpaCustomMetricNames(): string[] {
  const hpa = readYaml('k8s/base/hpa.yaml')
  return (hpa.spec.metrics as any[]).flatMap((m) => {
    const spec = m.pods ?? m.object ?? m.external
    return spec?.metric?.name ? [String(spec.metric.name)] : []
  })
}

// ---------------------------------------------------------------------------------------
// The running service's /metrics

export interface Exposition {
  /** Family name → type, from # TYPE lines. */
  families: Map<string, string>
  /** Sample name → label names seen on it. */
  samples: Map<string, Set<string>>
}

/** Parses the Prometheus text format (names and label names are all we need). */
export function parseExposition(body: string): Exposition {
  const families = new Map<string, string>()
  const samples = new Map<string, Set<string>>()
  for (const line of body.split('\n')) {
    if (line.startsWith('# TYPE ')) {
      const [, , name, type] = line.split(' ')
      if (name && type) families.set(name, type)
      continue
    }
    if (line === '' || line.startsWith('#')) continue
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})?\s/.exec(line)
    if (!match?.[1]) throw new Error(`unparsable exposition line: ${line}`)
    const labels = samples.get(match[1]) ?? new Set<string>()
    for (const pair of (match[3] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="/g)) if (pair[1]) labels.add(pair[1])
    samples.set(match[1], labels)
  }
  return { families, samples }
}

/** The family a sample name belongs to (histogram _bucket/_sum/_count, summary _sum/_count). */
export function familyOf(name: string, families: Map<string, string>): string | undefined {
  if (families.has(name)) return name
  for (const suffix of ['_bucket', '_sum', '_count']) {
    if (!name.endsWith(suffix)) continue
    const base = name.slice(0, -suffix.length)
    const type = families.get(base)
    if (type === 'histogram' || (type === 'summary' && suffix !== '_bucket')) return base
  }
  return undefined
}

/**
 * Counters that only get a sample when a rare event happens (a provider failing to load):
 * after ordinary traffic they are declared (# TYPE) but have no series yet.
 */
export const EVENT_ONLY_METRICS = new Set(['nima_execution_provider_fallbacks_total'])

// ---------------------------------------------------------------------------------------
// Traffic

export const SAMPLE_JPEG = join(sharedImages, 'idealo/42039.jpg')
/** Another photo, for traffic that must be scored anew rather than served by the score cache. */
export const SECOND_JPEG = join(sharedImages, 'idealo/42040.jpg')

export interface TrafficResult {
  statuses: Record<string, number>
}

/**
 * A little of every kind of traffic the dashboard shows: an upload, a URL, a ranking with
 * one broken URL, a bad request and the probes. Returns the status of each call.
 */
export async function sendTraffic(baseUrl: string, photo = SAMPLE_JPEG): Promise<TrafficResult> {
  const jpeg = readFileSync(photo)
  const upstream = await startUpstream((req, res) => {
    if (req.url === '/photo.jpg') {
      res.writeHead(200, { 'content-type': 'image/jpeg', 'content-length': jpeg.byteLength })
      res.end(jpeg)
    } else {
      res.writeHead(404)
      res.end()
    }
  })
  try {
    const statuses: Record<string, number> = {}
    const call = async (name: string, path: string, init?: RequestInit) => {
      const res = await fetch(baseUrl + path, init)
      await res.arrayBuffer()
      statuses[name] = res.status
    }
    await call('upload', '/score', { method: 'POST', body: jpeg, headers: { 'content-type': 'image/jpeg' } })
    await call('url', '/score', { method: 'POST', body: JSON.stringify({ url: `${upstream.url}/photo.jpg` }), headers: { 'content-type': 'application/json' } })
    await call('rank', '/rank', {
      method: 'POST',
      body: JSON.stringify({ images: [{ url: `${upstream.url}/photo.jpg`, id: 'ok' }, { url: `${upstream.url}/missing.jpg`, id: 'missing' }] }),
      headers: { 'content-type': 'application/json' },
    })
    await call('bad', '/score', { method: 'POST', body: 'not an image', headers: { 'content-type': 'text/plain' } })
    await call('healthz', '/healthz')
    await call('readyz', '/readyz')
    return { statuses }
  } finally {
    await upstream.close()
  }
}

/** The statuses sendTraffic must see from a healthy service. */
export const EXPECTED_TRAFFIC = { upload: 200, url: 200, rank: 200, bad: 415, healthz: 200, readyz: 200 }

/** A TCP port that was free a moment ago on 127.0.0.1, for processes that need a fixed one. */
export async function freePort(): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  await new Promise<void>((resolve) => server.close(() => resolve()))
  if (address === null || typeof address === 'string') throw new Error('no port')
  return address.port
}
