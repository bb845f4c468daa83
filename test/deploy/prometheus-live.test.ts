import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { stringify } from 'yaml'
import { makeCalibration } from '../helpers/calibration.js'
import { samplePhotos } from '../helpers/paths.js'
import { startTestService } from '../helpers/service.js'
import {
  adapterRules,
  alertExpressions,
  dashboardExpressions,
  EXPECTED_TRAFFIC,
  findExecutable,
  missingTool,
  promqlMetricNames,
  readYaml,
  renderAdapterQuery,
  repo,
  SAMPLE_JPEG,
  SECOND_JPEG,
  sendTraffic,
  substituteGrafanaVariables,
  freePort,
} from './helpers.js'

// A real Prometheus (Debian package `prometheus`) scrapes the real service with the repo's
// scrape config and alert rules; the dashboard's queries, its variables and the adapter's
// queries must return data through Prometheus' HTTP API.

const SCRAPE = '1s'
/** Stands for Grafana's $__rate_interval: several scrapes at a 1 s interval. */
const RATE_WINDOW = '30s'

/** Panels whose queries must show a positive value after the traffic, not just series. */
const MUST_BE_POSITIVE = ['Cache hit ratio by layer', 'API requests / s', 'Request rate by route', 'Latency by route (p50 / p95 / p99)', 'Inference latency by model (p50 / p95 / p99)', 'Images scored by model', 'Fetch latency by outcome (p50 / p95)', 'Fetched bytes', 'Memory']


interface QueryResult {
  status: string
  error?: string
  data: { resultType: string; result: { metric: Record<string, string>; value: [number, string] }[] }
}

async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs
  let last: unknown
  for (;;) {
    try {
      const value = await probe()
      if (value !== undefined) return value
    } catch (err) {
      last = err
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`)
    await sleep(250)
  }
}

const prometheus = findExecutable('prometheus', ['/usr/bin/prometheus'])

if (!prometheus) {
  missingTool(t, 'prometheus', '.ci/run installs the Debian package prometheus; or put the binary on PATH')
} else {
  t.test('a real Prometheus scrapes the service; dashboard, variables, adapter and alert queries return data', async (t) => {
    // Calibrated, with a drift window the traffic fills, so nima_score_drift has a series.
    const calibrated = await makeCalibration([SAMPLE_JPEG, SECOND_JPEG, ...samplePhotos().slice(0, 6)])
    t.teardown(() => rmSync(calibrated.dir, { recursive: true, force: true }))
    const svc = await startTestService({ SCORE_CALIBRATION: calibrated.calibration, SCORE_DRIFT_WINDOW: 3 })
    t.teardown(() => svc.server.shutdown())
    const target = new URL(svc.url).host

    // The repo's config, with the compose target swapped for the test service.
    const config = readYaml('deploy/prometheus/prometheus.yml')
    const jobs = config.scrape_configs as any[]
    t.same(jobs.map((j) => j.job_name), ['nima-serve'], 'one scrape job, nima-serve')
    t.same(jobs[0].static_configs.map((s: any) => s.targets.length), [1], 'with one static target')
    config.global = { ...config.global, scrape_interval: SCRAPE, evaluation_interval: SCRAPE }
    jobs[0].static_configs[0].targets = [target]
    config.rule_files = (config.rule_files as string[]).map((f) => repo('deploy/prometheus', f))

    const dir = mkdtempSync(join(tmpdir(), 'nima-prometheus-'))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    writeFileSync(join(dir, 'prometheus.yml'), stringify(config))
    const port = await freePort()
    const api = `http://127.0.0.1:${port}`
    let log = ''
    const child: ChildProcess = spawn(prometheus, [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ], { stdio: ['ignore', 'pipe', 'pipe'] })
    child.stdout?.on('data', (d: Buffer) => (log += d.toString()))
    child.stderr?.on('data', (d: Buffer) => (log += d.toString()))
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
    t.teardown(async () => {
      child.kill('SIGTERM')
      await Promise.race([exited, sleep(5000).then(() => child.kill('SIGKILL'))])
    })

    const query = async (expr: string): Promise<QueryResult> => {
      const res = await fetch(`${api}/api/v1/query?query=${encodeURIComponent(expr)}`)
      return (await res.json()) as QueryResult
    }

    try {
      await until('Prometheus ready', 20_000, async () => ((await fetch(`${api}/-/ready`)).ok ? true : undefined))
      await until('the service target up', 20_000, async () => {
        const r = await query('up{job="nima-serve"} == 1')
        return r.data?.result.length === 1 ? true : undefined
      })
    } catch (err) {
      t.fail(String(err), { log })
      return
    }

    // Traffic after the first scrape, so rates see it; twice, a scrape apart. Another photo
    // the second time: the score cache would otherwise answer it all, and inference would
    // not run again (the URL of the photo just uploaded is a cache hit in both rounds).
    for (let i = 0; i < 2; i++) {
      t.same((await sendTraffic(svc.url, i === 0 ? SAMPLE_JPEG : SECOND_JPEG)).statuses, EXPECTED_TRAFFIC, `traffic round ${i + 1}`)
      await sleep(1200)
    }

    // Every dashboard query returns series (the data Grafana would draw).
    const dashboard = dashboardExpressions().filter((e) => !e.source.startsWith('dashboard variable'))
    const results = new Map<string, QueryResult>()
    try {
      await until('every dashboard query to return data', 20_000, async () => {
        for (const { source, expr } of dashboard) {
          if (results.get(source)?.data.result.length) continue
          results.set(source, await query(substituteGrafanaVariables(expr, RATE_WINDOW)))
        }
        return [...results.values()].every((r) => r.status === 'success' && r.data.result.length > 0) ? true : undefined
      })
    } catch {
      // reported per query below
    }
    for (const { source, expr } of dashboard) {
      const r = results.get(source)
      t.ok(r?.status === 'success' && r.data.result.length > 0, `${source} returns data`, { expr, error: r?.error, log })
    }
    for (const title of MUST_BE_POSITIVE) {
      const mine = dashboard.filter((e) => e.source.startsWith(`dashboard panel "${title}"`))
      t.ok(mine.length > 0, `panel "${title}" exists`)
      const values = mine.flatMap((e) => results.get(e.source)?.data.result.map((s) => Number(s.value[1])) ?? [])
      t.ok(values.some((v) => Number.isFinite(v) && v > 0), `panel "${title}" shows a positive value`, { values })
    }

    // The template variables: label_values(nima_ready, job) and the instance under it.
    const jobs2 = (await (await fetch(`${api}/api/v1/label/job/values?match[]=nima_ready`)).json()) as { data: string[] }
    t.same(jobs2.data, ['nima-serve'], '$job lists the scrape job')
    const instances = (await (await fetch(`${api}/api/v1/label/instance/values?match[]=${encodeURIComponent('nima_ready{job=~"nima-serve"}')}`)).json()) as { data: string[] }
    t.same(instances.data, [target], '$instance lists the target')

    // The adapter's metricsQuery, rendered as the adapter would for this target.
    for (const rule of adapterRules()) {
      const series = promqlMetricNames(rule.seriesQuery)[0] as string
      const expr = renderAdapterQuery(rule.metricsQuery, series, `job="nima-serve",instance="${target}"`, 'instance')
      const r = await query(expr)
      t.ok(r.status === 'success' && r.data.result.length === 1, `adapter metric ${rule.servedName} has one value for the target`, { expr, error: r.error })
    }

    // The alert rules load, evaluate without errors, and the synthetic-model alert is pending.
    await until('a rule evaluation', 10_000, async () => {
      const r = (await (await fetch(`${api}/api/v1/rules`)).json()) as any
      return r.data.groups.every((g: any) => g.rules.every((rule: any) => rule.lastEvaluation && !rule.lastEvaluation.startsWith('0001'))) ? true : undefined
    }).catch((err: unknown) => t.fail(String(err)))
    const rules = (await (await fetch(`${api}/api/v1/rules`)).json()) as any
    const loaded = rules.data.groups.flatMap((g: any) => g.rules) as any[]
    t.equal(loaded.length, alertExpressions().length, 'every alert rule is loaded')
    for (const rule of loaded) t.equal(rule.health, 'ok', `alert ${rule.name} evaluates`, { lastError: rule.lastError })
    const pending = await until('NimaServeSyntheticModels pending', 10_000, async () => {
      const r = (await (await fetch(`${api}/api/v1/alerts`)).json()) as any
      const found = (r.data.alerts as any[]).filter((a) => a.labels.alertname === 'NimaServeSyntheticModels')
      return found.length > 0 ? found : undefined
    }).catch(() => [] as any[])
    t.same(pending.map((a: any) => [a.labels.model, a.state]).sort(), [['aesthetic', 'pending'], ['technical', 'pending']], 'synthetic models raise NimaServeSyntheticModels (pending for its for: window)')
    for (const quiet of ['NimaServeDown', 'NimaServeNotReady', 'NimaServeHighErrorRate']) {
      const r = (await (await fetch(`${api}/api/v1/alerts`)).json()) as any
      t.notOk((r.data.alerts as any[]).some((a) => a.labels.alertname === quiet), `${quiet} stays quiet on a healthy service`)
    }
  })
}
