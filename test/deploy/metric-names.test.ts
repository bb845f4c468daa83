import { rmSync } from 'node:fs'
import t from 'tap'
import { makeCalibration } from '../helpers/calibration.js'
import { samplePhotos } from '../helpers/paths.js'
import { startTestService } from '../helpers/service.js'
import {
  adapterExpressions,
  adapterRules,
  alertExpressions,
  dashboardExpressions,
  EVENT_ONLY_METRICS,
  EXPECTED_TRAFFIC,
  type Expression,
  familyOf,
  hpaCustomMetricNames,
  parseExposition,
  PROMETHEUS_SYNTHETIC_SERIES,
  SAMPLE_JPEG,
  SECOND_JPEG,
  promqlMetricNames,
  promqlSelectors,
  sendTraffic,
  substituteGrafanaVariables,
  TARGET_LABELS,
} from './helpers.js'

// Every metric (and every label in a selector) that the dashboard, the alert rules, the
// prometheus-adapter rules and the HPA use must exist in the real service's /metrics.

t.test('the PromQL extractor', async (t) => {
  t.same(promqlMetricNames('histogram_quantile(0.99, sum by (le) (rate(a_bucket{x="1"}[5m]))) / on() group_left b offset 5m'), ['a_bucket', 'b'])
  t.same(promqlMetricNames('sum(rate({__name__="c_total", code=~"5.."}[1m])) or vector(0)'), ['c_total'])
  t.same(promqlSelectors('max(d{route!~"/x", status_code=~"5.."}[5m:1m])'), [{ metric: 'd', labels: ['route', 'status_code'] }])
  t.throws(() => promqlMetricNames('sum(rate(x[5m])'), /syntax error/)
  t.throws(() => promqlMetricNames('rate(x[$__rate_interval])'), /syntax error/, 'Grafana variables must be substituted first')
  t.same(promqlMetricNames(substituteGrafanaVariables('rate(x{job=~"$job"}[$__rate_interval])')), ['x'])
})

t.test('every metric the deploy files use is in the running service /metrics', async (t) => {
  // Calibrated, with a drift window the traffic fills, so nima_score_drift has a series.
    const calibrated = await makeCalibration([SAMPLE_JPEG, SECOND_JPEG, ...samplePhotos().slice(0, 6)])
    t.teardown(() => rmSync(calibrated.dir, { recursive: true, force: true }))
    const svc = await startTestService({ SCORE_CALIBRATION: calibrated.calibration, SCORE_DRIFT_WINDOW: 3 })
  t.teardown(() => svc.server.shutdown())
  const { statuses } = await sendTraffic(svc.url)
  t.same(statuses, EXPECTED_TRAFFIC, 'traffic: upload, URL, rank with a broken URL, a bad request, probes')
  const body = await (await fetch(`${svc.url}/metrics`)).text()
  const { families, samples } = parseExposition(body)

  const expressions: Expression[] = [
    ...dashboardExpressions().map((e) => ({ ...e, expr: substituteGrafanaVariables(e.expr) })),
    ...alertExpressions(),
    ...adapterExpressions(),
  ]
  t.ok(dashboardExpressions().length >= 20, 'the dashboard has its queries')
  t.ok(alertExpressions().length >= 5, 'the alert rules are there')

  const used = new Set<string>()
  for (const { source, expr } of expressions) {
    let selectors
    try {
      selectors = promqlSelectors(expr)
    } catch (err) {
      t.fail(`${source}: ${err instanceof Error ? err.message : String(err)}`)
      continue
    }
    t.ok(selectors.length > 0, `${source} selects at least one metric`)
    for (const { metric, labels } of selectors) {
      if (PROMETHEUS_SYNTHETIC_SERIES.has(metric)) continue
      used.add(metric)
      const family = familyOf(metric, families)
      if (family === undefined) {
        t.fail(`${source}: ${metric} is not exported by the service`, { expr })
        continue
      }
      if (EVENT_ONLY_METRICS.has(family)) continue // declared, no series until the event happens
      const seen = samples.get(metric)
      if (!seen) {
        t.fail(`${source}: ${metric} has no samples after traffic (a histogram needs _bucket/_sum/_count)`, { expr })
        continue
      }
      for (const label of labels) {
        if (TARGET_LABELS.has(label) || label === 'le') continue
        t.ok(seen.has(label), `${source}: ${metric} has label ${label}`)
      }
    }
  }

  // The HPA asks the custom metrics API for a name that an adapter rule serves.
  const served = new Map(adapterRules().map((r) => [r.servedName, r]))
  for (const name of hpaCustomMetricNames()) {
    const rule = served.get(name)
    t.ok(rule, `HPA metric ${name} is served by a prometheus-adapter rule`)
    if (rule) for (const series of promqlMetricNames(rule.seriesQuery)) t.ok(samples.has(series), `HPA metric ${name} comes from ${series}, exported by the service`)
  }

  t.ok(used.has('nima_inflight_requests') && used.has('nima_errors_total') && used.has('nima_http_request_duration_seconds_bucket'), 'the key metrics are among those checked')
  t.ok(used.has('nima_score_mean_bucket') && used.has('nima_score_drift'), 'the score distribution and drift are among them')
  t.comment(`checked ${used.size} metric names from ${expressions.length} expressions`)
})
