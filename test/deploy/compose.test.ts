import { existsSync, readFileSync, statSync } from 'node:fs'
import { posix } from 'node:path'
import t from 'tap'
import { dockerfileStages } from './dockerfile.js'
import { readYaml, repo } from './helpers.js'

// docker-compose.yml (and the GPU override) parse, mount files that exist at the paths the
// containers read, and wire service → Prometheus → Grafana by the right names and ports.
// No Docker engine runs here, so this is all that can be checked of compose offline.

interface Mount {
  host: string
  container: string
  readOnly: boolean
}

function mounts(service: any): Mount[] {
  return ((service.volumes ?? []) as (string | any)[]).flatMap((v) => {
    if (typeof v !== 'string') return v.type === 'bind' ? [{ host: v.source, container: v.target, readOnly: v.read_only === true }] : []
    const [host, container, mode] = v.split(':')
    if (!host || !container || !/^[./]/.test(host)) return [] // a named volume
    return [{ host, container, readOnly: mode === 'ro' }]
  })
}

/** The host file behind a container path, through the service's bind mounts. */
function hostPathOf(service: any, containerPath: string): string | undefined {
  for (const m of mounts(service)) {
    if (containerPath === m.container) return repo(m.host)
    if (containerPath.startsWith(m.container + '/')) return repo(m.host, posix.relative(m.container, containerPath))
  }
  return undefined
}

const compose = readYaml('docker-compose.yml')
const gpuOverride = readYaml('deploy/compose/gpu.yml')
const services = compose.services as Record<string, any>
const stages = dockerfileStages()

t.test('docker-compose.yml: services, images, builds and mounts', async (t) => {
  t.same(Object.keys(services).sort(), ['grafana', 'jaeger', 'nima-serve', 'otel-collector', 'prometheus', 'redis'])
  for (const [name, service] of Object.entries(services)) {
    if (service.image && !service.build) t.match(service.image, /:[\w][\w.-]*$/, `${name}: image ${service.image} has a pinned tag`)
    if (service.image) t.notMatch(service.image, /:latest$/, `${name}: not :latest`)
    for (const m of mounts(service)) {
      t.ok(existsSync(repo(m.host)), `${name}: mounted ${m.host} exists`)
      t.ok(m.readOnly, `${name}: ${m.host} is mounted read-only`)
    }
  }
  for (const [file, doc] of [['docker-compose.yml', compose], ['deploy/compose/gpu.yml', gpuOverride]] as const) {
    for (const [name, service] of Object.entries(doc.services as Record<string, any>)) {
      if (!service.build) continue
      t.ok(statSync(repo(service.build.context)).isDirectory(), `${file} ${name}: build context exists`)
      t.ok(existsSync(repo(service.build.context, service.build.dockerfile ?? 'Dockerfile')), `${file} ${name}: Dockerfile exists`)
      t.ok(stages.some((s) => s.name === service.build.target), `${file} ${name}: build target ${service.build.target} is a Dockerfile stage`)
    }
  }
})

t.test('nima-serve service: hardened like the Kubernetes pod, drains before it is killed', async (t) => {
  const svc = services['nima-serve']
  t.equal(svc.build.target, 'runtime', 'builds the CPU image')
  t.match(svc.build.args.NIMA_MODELS, /ensure/, 'synthetic models by default (NIMA_MODELS overrides)')
  t.equal(svc.read_only, true, 'read-only root filesystem')
  t.ok((svc.tmpfs as string[]).some((p) => p.split(':')[0] === '/tmp'), '/tmp is a tmpfs')
  t.same(svc.cap_drop, ['ALL'], 'drops all capabilities')
  const graceMs = Number(svc.environment.SHUTDOWN_GRACE_MS)
  const stop = /^(\d+)s$/.exec(svc.stop_grace_period)
  t.ok(stop && Number(stop[1]) * 1000 > graceMs, `stop_grace_period ${svc.stop_grace_period} > SHUTDOWN_GRACE_MS ${graceMs} ms`)
  t.ok((svc.ports as string[]).includes('8080:8080'), 'publishes 8080')
})

t.test('redis: the shared score cache, a cache only, and the service pointed at it', async (t) => {
  const redis = services['redis']
  const cacheUrl = /^\$\{CACHE_URL-(.*)\}$/.exec(services['nima-serve'].environment.CACHE_URL)?.[1] ?? services['nima-serve'].environment.CACHE_URL
  const url = new URL(cacheUrl)
  t.equal(url.protocol, 'redis:', `CACHE_URL ${cacheUrl} (overridable with CACHE_URL)`)
  t.ok(services[url.hostname] === redis, 'CACHE_URL names the redis service')
  t.equal(url.port, '6379', "Redis's port")
  const args: string[] = redis.command
  const arg = (name: string) => args[args.indexOf(name) + 1]
  t.equal(args[0], 'redis-server')
  t.equal(arg('--save'), '', 'no RDB snapshots')
  t.equal(arg('--appendonly'), 'no', 'no AOF')
  t.equal(arg('--maxmemory-policy'), 'allkeys-lru', 'evicts least recently used keys')
  t.match(arg('--maxmemory'), /^\d+mb$/, 'bounded by maxmemory')
  t.equal(redis.read_only, true, 'read-only root filesystem')
  t.same(redis.cap_drop, ['ALL'], 'drops all capabilities')
  t.notOk(services['nima-serve'].depends_on, 'the service does not wait for Redis: it serves without it')
})

t.test('GPU override: gpu target, CUDA provider, one NVIDIA device', async (t) => {
  const svc = gpuOverride.services['nima-serve']
  t.ok(services['nima-serve'], 'overrides a service of docker-compose.yml')
  t.equal(svc.build.target, 'gpu')
  t.equal(svc.environment.EXECUTION_PROVIDERS, 'cuda,cpu')
  t.same(svc.deploy.resources.reservations.devices, [{ driver: 'nvidia', count: 1, capabilities: ['gpu'] }])
})

t.test('Prometheus: mounted config and rules at the paths it reads; scrapes the service', async (t) => {
  const prom = services['prometheus']
  const configPath = (prom.command as string[]).find((a) => a.startsWith('--config.file='))?.split('=')[1]
  t.ok(configPath, '--config.file is set')
  const hostConfig = hostPathOf(prom, configPath as string)
  t.equal(hostConfig, repo('deploy/prometheus/prometheus.yml'), 'the repo config is mounted where --config.file points')
  const config = readYaml('deploy/prometheus/prometheus.yml')
  for (const rules of config.rule_files as string[]) {
    const inContainer = posix.resolve(posix.dirname(configPath as string), rules)
    const host = hostPathOf(prom, inContainer)
    t.ok(host && existsSync(host), `rule file ${rules} is mounted at ${inContainer}`)
  }
  const targets = (config.scrape_configs as any[]).flatMap((j) => (j.static_configs as any[]).flatMap((s) => s.targets as string[]))
  for (const target of targets) {
    const [host, port] = target.split(':')
    t.ok(host && services[host], `scrape target ${target} is a compose service`)
    t.equal(port, '8080', `scrape target ${target} is the image's PORT`)
  }
})

t.test('Grafana: provisioned datasource and dashboard reach what compose mounts', async (t) => {
  const grafana = services['grafana']
  t.equal(hostPathOf(grafana, '/etc/grafana/provisioning'), repo('deploy/grafana/provisioning'), 'provisioning folder mounted')
  const datasources = readYaml('deploy/grafana/provisioning/datasources/prometheus.yml').datasources as any[]
  t.equal(datasources.length, 1)
  const ds = datasources[0]
  t.equal(ds.type, 'prometheus')
  const url = new URL(ds.url)
  t.ok(services[url.hostname], `datasource host ${url.hostname} is a compose service`)
  t.ok((services[url.hostname].ports as string[]).some((p) => p.endsWith(`:${url.port}`)), `datasource port ${url.port} is Prometheus' port`)
  const providers = readYaml('deploy/grafana/provisioning/dashboards/nima-serve.yml').providers as any[]
  for (const p of providers) {
    const host = hostPathOf(grafana, p.options.path)
    t.ok(host && existsSync(`${host}/nima-serve.json`), `dashboard provider path ${p.options.path} holds nima-serve.json`)
  }
  const home = grafana.environment.GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH as string
  const homeHost = hostPathOf(grafana, home)
  t.ok(homeHost && existsSync(homeHost), `home dashboard ${home} is mounted`)
})

t.test('the dashboard JSON: uid, datasource variable, every panel on it, the requested panels', async (t) => {
  const dashboard = JSON.parse(readFileSync(repo('deploy/grafana/dashboards/nima-serve.json'), 'utf8')) as any
  t.equal(dashboard.uid, 'nima-serve')
  t.equal(dashboard.id ?? null, null, 'no instance-specific id')
  const vars = dashboard.templating.list as any[]
  const dsVar = vars.find((v) => v.type === 'datasource')
  t.equal(dsVar?.query, 'prometheus', 'a Prometheus datasource variable')
  const panels = (dashboard.panels as any[]).filter((p) => p.type !== 'row')
  const ids = (dashboard.panels as any[]).map((p) => p.id)
  t.equal(new Set(ids).size, ids.length, 'panel ids are unique')
  for (const p of panels) {
    t.equal(p.datasource?.uid, `\${${dsVar.name}}`, `panel "${p.title}" uses the datasource variable`)
    for (const target of p.targets ?? []) t.equal(target.datasource?.uid, `\${${dsVar.name}}`, `panel "${p.title}" ${target.refId} uses the datasource variable`)
  }
  for (const v of vars.filter((v) => v.type === 'query')) t.equal(v.datasource?.uid, `\${${dsVar.name}}`, `variable $${v.name} uses the datasource variable`)
  // Panels do not overlap on Grafana's 24-column grid.
  const boxes = (dashboard.panels as any[]).map((p) => ({ title: p.title, ...p.gridPos }))
  for (const b of boxes) t.ok(b.x >= 0 && b.x + b.w <= 24, `"${b.title}" fits the 24-column grid`)
  for (let i = 0; i < boxes.length; i++) {
    for (let j = i + 1; j < boxes.length; j++) {
      const a = boxes[i]
      const b = boxes[j]
      const overlap = a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h
      if (overlap) t.fail(`"${a.title}" overlaps "${b.title}"`)
    }
  }
  const titles = panels.map((p) => p.title as string)
  for (const wanted of [
    /request rate/i, /errors by code/i, /latency by route \(p50 \/ p95 \/ p99\)/i, /inference latency by model/i, /batch size/i,
    /queue depth and in-flight/i, /images scored by model/i, /fetch latency/i, /fetched bytes/i, /^cpu$/i, /^memory$/i,
    /cache hit ratio by layer/i, /redis bypasses/i, /revalidations and upstream bytes saved/i, /in-process cache size/i, /garbage collection/i,
  ]) {
    t.ok(titles.some((title) => wanted.test(title)), `a panel matches ${wanted}`)
  }
})

t.test('the tracing profile: the service → OTLP/HTTP → the collector → OTLP/gRPC → Jaeger, off by default', async (t) => {
  const collector = services['otel-collector']
  const jaeger = services['jaeger']
  for (const [name, service] of [['otel-collector', collector], ['jaeger', jaeger]] as const) t.same(service.profiles, ['tracing'], `${name} only with --profile tracing`)
  t.notOk(services['nima-serve'].profiles, 'the service runs with or without the profile')
  const env = services['nima-serve'].environment
  t.equal(env.OTEL_EXPORTER_OTLP_ENDPOINT, '${OTEL_EXPORTER_OTLP_ENDPOINT:-}', 'tracing off unless an endpoint is given (an empty value is unset)')
  const hint = /OTEL_EXPORTER_OTLP_ENDPOINT=(\S+) docker compose --profile tracing up/.exec(readFileSync(repo('docker-compose.yml'), 'utf8'))?.[1]
  t.ok(hint, 'the file says how to turn it on')
  const endpoint = new URL(hint!)
  t.equal(endpoint.hostname, 'otel-collector', 'the endpoint it suggests is the collector')

  const configPath = (collector.command as string[]).find((a) => a.startsWith('--config='))?.split('=')[1]
  const hostConfig = configPath && hostPathOf(collector, configPath)
  t.equal(hostConfig, repo('deploy/otel-collector/config.yaml'), 'the repo config is mounted where --config points')
  const config = readYaml('deploy/otel-collector/config.yaml')
  t.equal(new URL(`http://${config.receivers.otlp.protocols.http.endpoint}`).port, endpoint.port, 'the collector listens for OTLP/HTTP on the port the service is pointed at')
  const pipeline = config.service.pipelines.traces
  t.same(pipeline.receivers, ['otlp'])
  for (const p of pipeline.processors as string[]) t.ok(p in config.processors, `processor ${p} is defined`)
  for (const e of pipeline.exporters as string[]) {
    t.ok(e in config.exporters, `exporter ${e} is defined`)
    const [host, port] = (config.exporters[e].endpoint as string).split(':')
    t.ok(services[host!] === jaeger, `exporter ${e} sends to the jaeger service`)
    t.equal(port, '4317', "Jaeger's OTLP/gRPC port")
  }
  t.ok((jaeger.ports as string[]).includes('16686:16686'), "Jaeger's UI is published")
})
