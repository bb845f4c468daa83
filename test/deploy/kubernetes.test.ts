import { execFileSync } from 'node:child_process'
import { isDeepStrictEqual } from 'node:util'
import t from 'tap'
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler'
import { Deployment } from 'kubernetes-models/apps/v1/Deployment'
import { Job } from 'kubernetes-models/batch/v1/Job'
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget'
import { Service } from 'kubernetes-models/v1/Service'
import { PrometheusRule } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule'
import { ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor'
import { loadConfig } from '../../src/config/load.js'
import { ConfigSchema } from '../../src/config/schema.js'
import { adapterRules, findKustomize, missingTool, parseYamlDocuments, readYaml, repo } from './helpers.js'
import { unknownFieldErrors } from './unknown-fields.js'

// The kustomize output of both overlays and of the batch Job validates against the
// Kubernetes API schemas (kubernetes-models, @kubernetes-models/prometheus-operator for the
// CRDs), has no unknown fields, and wires probes, shutdown, autoscaling and monitoring.

interface Kind {
  /** Validates against the bundled OpenAPI schema; throws with the JSON path on failure. */
  validate: (doc: any) => void
  /** The TypeScript interface, for the unknown-field check. */
  type: { name: string; module: string }
}

const KINDS: Record<string, Kind> = {
  'apps/v1 Deployment': { validate: (d) => new Deployment(d).validate(), type: { name: 'IDeployment', module: 'kubernetes-models/apps/v1/Deployment' } },
  'v1 Service': { validate: (d) => new Service(d).validate(), type: { name: 'IService', module: 'kubernetes-models/v1/Service' } },
  'autoscaling/v2 HorizontalPodAutoscaler': { validate: (d) => new HorizontalPodAutoscaler(d).validate(), type: { name: 'IHorizontalPodAutoscaler', module: 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler' } },
  'policy/v1 PodDisruptionBudget': { validate: (d) => new PodDisruptionBudget(d).validate(), type: { name: 'IPodDisruptionBudget', module: 'kubernetes-models/policy/v1/PodDisruptionBudget' } },
  'batch/v1 Job': { validate: (d) => new Job(d).validate(), type: { name: 'IJob', module: 'kubernetes-models/batch/v1/Job' } },
  'monitoring.coreos.com/v1 ServiceMonitor': { validate: (d) => new ServiceMonitor(d).validate(), type: { name: 'IServiceMonitor', module: '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor' } },
  'monitoring.coreos.com/v1 PrometheusRule': { validate: (d) => new PrometheusRule(d).validate(), type: { name: 'IPrometheusRule', module: '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PrometheusRule' } },
}

const kindOf = (doc: any): string => `${doc.apiVersion} ${doc.kind}`
const label = (doc: any): string => `${doc.kind}/${doc.metadata?.name}`

/** Each rendered document against its kind's kubernetes-models interface (unknown-fields.ts). */
function docFieldErrors(docs: any[]): string[] {
  return unknownFieldErrors(
    docs.flatMap((doc) => {
      const kind = KINDS[kindOf(doc)]
      return kind ? [{ label: label(doc), typeName: kind.type.name, module: kind.type.module, value: doc }] : []
    }),
  )
}

const matches = (selector: Record<string, string>, labels: Record<string, string>): boolean =>
  Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => labels[k] === v)

const envOf = (container: any): Record<string, string> =>
  Object.fromEntries((container.env ?? []).filter((e: any) => typeof e.value === 'string').map((e: any) => [e.name, e.value]))

function checkHardening(t: Tap, podSpec: any, where: string): void {
  t.equal(podSpec.securityContext?.runAsNonRoot, true, `${where}: pod runAsNonRoot`)
  t.ok(Number(podSpec.securityContext?.runAsUser) > 0, `${where}: pod runs as a non-zero uid`)
  t.equal(podSpec.automountServiceAccountToken, false, `${where}: no service account token`)
  for (const c of podSpec.containers) {
    const sc = c.securityContext ?? {}
    t.equal(sc.allowPrivilegeEscalation, false, `${where}/${c.name}: allowPrivilegeEscalation false`)
    t.equal(sc.readOnlyRootFilesystem, true, `${where}/${c.name}: readOnlyRootFilesystem`)
    t.ok(sc.capabilities?.drop?.includes('ALL'), `${where}/${c.name}: drops ALL capabilities`)
    t.notOk(sc.capabilities?.add?.length, `${where}/${c.name}: adds no capability`)
    const tmp = (c.volumeMounts ?? []).find((m: any) => m.mountPath === '/tmp')
    const volume = podSpec.volumes?.find((v: any) => v.name === tmp?.name)
    t.ok(volume?.emptyDir, `${where}/${c.name}: writable /tmp is an emptyDir`)
    for (const r of ['cpu', 'memory']) {
      t.ok(c.resources?.requests?.[r], `${where}/${c.name}: requests ${r}`)
      t.ok(c.resources?.limits?.[r], `${where}/${c.name}: limits ${r}`)
    }
    // Every service setting it passes is a real config variable with a valid value.
    const env = envOf(c)
    const known = Object.keys(ConfigSchema.properties)
    const config = Object.fromEntries(Object.entries(env).filter(([k]) => known.includes(k)))
    t.doesNotThrow(() => loadConfig(config), `${where}/${c.name}: env passes the service's config validation`)
  }
}

/** The assertions checkHardening needs from a tap test. */
interface Tap {
  ok(...args: any[]): unknown
  notOk(...args: any[]): unknown
  equal(...args: any[]): unknown
  doesNotThrow(...args: any[]): unknown
}

const kustomize = findKustomize()

if ('missing' in kustomize) {
  missingTool(t, 'kustomize (v4+)', `${kustomize.missing}; install kubectl >= 1.21 or kustomize`)
} else {
  t.comment(`rendering with ${kustomize.version}`)
  const render = (dir: string): any[] =>
    parseYamlDocuments(execFileSync(kustomize.command, [...kustomize.args, repo(dir)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }))

  const rendered: Record<string, any[]> = {}
  for (const dir of ['k8s/overlays/cpu', 'k8s/overlays/gpu', 'k8s/overlays/cpu-redis', 'k8s/batch']) {
    t.test(`${dir}: kustomize renders it, and every object validates`, async (t) => {
      let docs: any[]
      try {
        docs = render(dir)
      } catch (err) {
        const e = err as { stderr?: string; message: string }
        t.fail(`kustomize failed: ${e.stderr || e.message}`)
        return
      }
      rendered[dir] = docs
      t.ok(docs.length > 0, 'renders objects')
      for (const doc of docs) {
        const kind = KINDS[kindOf(doc)]
        if (!kind) {
          t.fail(`${label(doc)}: ${kindOf(doc)} has no schema here (add it to KINDS)`)
          continue
        }
        t.doesNotThrow(() => kind.validate(doc), `${label(doc)} validates against ${kindOf(doc)}`)
      }
    })
  }

  t.test('no unknown fields in any rendered object (and a planted typo is caught)', async (t) => {
    // One TypeScript program for everything: a canary with a misspelt field proves the check bites.
    const canary = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'unknown-field-canary' }, spec: { selectr: { a: 'b' } } }
    const all = [...Object.values(rendered).flat(), canary]
    t.ok(all.length > 10, `${all.length} objects`)
    const errors = docFieldErrors(all)
    const planted = errors.filter((e) => e.startsWith('Service/unknown-field-canary:'))
    t.equal(planted.length, 1, 'the planted typo is reported')
    t.match(planted[0], /selectr/)
    t.same(errors.filter((e) => !planted.includes(e)), [], 'the manifests have no field the API does not define')
  })

  for (const overlay of ['cpu', 'gpu'] as const) {
    t.test(`overlays/${overlay}: probes, shutdown, hardening, autoscaling, monitoring`, async (t) => {
      const docs = rendered[`k8s/overlays/${overlay}`]
      if (!docs) return t.fail('not rendered')
      const only = (kind: string) => {
        const found = docs.filter((d) => d.kind === kind)
        t.equal(found.length, 1, `one ${kind}`)
        return found[0]
      }
      const deployment = only('Deployment')
      const service = only('Service')
      const hpa = only('HorizontalPodAutoscaler')
      const pdb = only('PodDisruptionBudget')
      const monitor = only('ServiceMonitor')
      const rule = only('PrometheusRule')
      if (!deployment || !service || !hpa || !pdb || !monitor || !rule) return

      const pod = deployment.spec.template
      const podLabels: Record<string, string> = pod.metadata.labels
      t.ok(matches(deployment.spec.selector.matchLabels, podLabels), 'Deployment selector matches its pods')
      t.equal(deployment.spec.replicas, undefined, 'no replicas in the Deployment: the HPA owns the count')
      t.equal(pod.spec.containers.length, 1, 'one container')
      const c = pod.spec.containers[0]
      const env = envOf(c)
      const http = (c.ports as any[]).find((p) => p.name === 'http')
      t.equal(http?.containerPort, Number(env['PORT']), 'container port "http" is PORT')

      // Probes.
      const probe = (p: any) => `${p?.httpGet?.path} on ${p?.httpGet?.port}`
      t.equal(probe(c.readinessProbe), '/readyz on http', 'readiness probe: GET /readyz')
      t.equal(probe(c.livenessProbe), '/healthz on http', 'liveness probe: GET /healthz')
      t.match(probe(c.startupProbe), /^\/(healthz|readyz) on http$/, 'startup probe on /healthz or /readyz')

      // Shutdown: preStop sleep, then SIGTERM drains for SHUTDOWN_GRACE_MS, all before SIGKILL.
      const graceMs = Number(env['SHUTDOWN_GRACE_MS'] ?? ConfigSchema.properties.SHUTDOWN_GRACE_MS.default)
      const preStop: string[] = c.lifecycle?.preStop?.exec?.command ?? []
      t.equal(preStop[0], 'sleep', 'preStop sleeps so endpoints drop the pod before SIGTERM')
      const preStopS = Number(preStop[1])
      t.ok(preStopS >= 2 && preStopS <= 10, `preStop sleep is short (${preStopS} s)`)
      const tgps = Number(pod.spec.terminationGracePeriodSeconds)
      t.ok(tgps > graceMs / 1000, `terminationGracePeriodSeconds ${tgps} > SHUTDOWN_GRACE_MS ${graceMs} ms`)
      t.ok(tgps >= preStopS + graceMs / 1000 + 1, `terminationGracePeriodSeconds ${tgps} covers preStop ${preStopS} s + grace ${graceMs / 1000} s`)

      checkHardening(t, pod.spec, 'Deployment')

      // Service and PDB select the pods; ServiceMonitor selects the Service's named port.
      t.ok(matches(service.spec.selector, podLabels), 'Service selects the pods')
      t.ok((service.spec.ports as any[]).some((p) => p.targetPort === 'http'), 'Service targets the http port by name')
      t.ok(matches(pdb.spec.selector.matchLabels, podLabels), 'PDB selects the pods')
      t.ok(matches(monitor.spec.selector.matchLabels, service.metadata.labels), 'ServiceMonitor selects the Service')
      const servicePorts = new Set((service.spec.ports as any[]).map((p) => p.name))
      for (const ep of monitor.spec.endpoints) {
        t.ok(servicePorts.has(ep.port), `ServiceMonitor endpoint port ${ep.port} is a Service port`)
        t.equal(ep.path, '/metrics', 'ServiceMonitor scrapes /metrics')
      }
      t.ok(isDeepStrictEqual(rule.spec.groups, readYaml('deploy/prometheus/alerts.yml').groups), 'PrometheusRule carries exactly the groups of deploy/prometheus/alerts.yml')

      // Autoscaling: CPU and a per-pod custom metric from prometheus-adapter, with behaviour.
      t.equal(hpa.apiVersion, 'autoscaling/v2', 'HPA is autoscaling/v2')
      t.same(hpa.spec.scaleTargetRef, { apiVersion: 'apps/v1', kind: 'Deployment', name: deployment.metadata.name }, 'HPA scales the Deployment')
      t.ok(hpa.spec.minReplicas >= 2 && hpa.spec.maxReplicas > hpa.spec.minReplicas, `HPA ${hpa.spec.minReplicas}..${hpa.spec.maxReplicas} replicas`)
      const cpu = (hpa.spec.metrics as any[]).find((m) => m.type === 'Resource' && m.resource.name === 'cpu')
      t.equal(cpu?.resource.target.type, 'Utilization', 'HPA scales on CPU utilisation')
      const pods = (hpa.spec.metrics as any[]).find((m) => m.type === 'Pods')
      const served = adapterRules().map((r) => r.servedName)
      t.ok(pods && served.includes(pods.pods.metric.name), `HPA scales on per-pod ${pods?.pods.metric.name}, served by prometheus-adapter (${served.join(', ')})`)
      t.equal(pods?.pods.target.type, 'AverageValue', 'per-pod metric target is an average value')
      t.ok(hpa.spec.behavior?.scaleUp?.policies?.length && hpa.spec.behavior?.scaleDown?.policies?.length, 'HPA has scale-up and scale-down behaviour')
      t.ok(hpa.spec.behavior.scaleDown.stabilizationWindowSeconds >= 60, 'scale-down is stabilised')
      t.equal(pdb.spec.maxUnavailable ?? pdb.spec.minAvailable, 1, 'PDB lets one pod go at a time')

      // CPU vs GPU.
      const gpus = c.resources?.limits?.['nvidia.com/gpu']
      if (overlay === 'gpu') {
        t.equal(String(gpus), '1', 'GPU overlay limits nvidia.com/gpu: 1')
        t.equal(env['EXECUTION_PROVIDERS'], 'cuda,cpu', 'GPU overlay: EXECUTION_PROVIDERS=cuda,cpu')
        t.match(c.image, /nima-serve-gpu:/, 'GPU overlay uses the GPU image')
        t.ok((pod.spec.tolerations ?? []).some((tol: any) => tol.key === 'nvidia.com/gpu'), 'GPU overlay tolerates GPU node taints')
      } else {
        t.equal(gpus, undefined, 'CPU overlay asks for no GPU')
        t.equal(env['EXECUTION_PROVIDERS'], 'cpu', 'CPU overlay: EXECUTION_PROVIDERS=cpu')
        t.match(c.image, /\/nima-serve:/, 'CPU overlay uses the CPU image')
      }
    })
  }

  t.test('components/redis (overlays/cpu-redis): a hardened cache-only Redis, and the service pointed at it', async (t) => {
    const withRedis = rendered['k8s/overlays/cpu-redis']
    const cpu = rendered['k8s/overlays/cpu']
    if (!withRedis || !cpu) return t.fail('not rendered')
    const isRedis = (d: any) => d.metadata?.labels?.['app.kubernetes.io/component'] === 'cache'
    const redisDocs = withRedis.filter(isRedis)
    t.same(redisDocs.map((d) => d.kind).sort(), ['Deployment', 'Service'], 'adds a Redis Deployment and its Service')
    const redis = redisDocs.find((d) => d.kind === 'Deployment')
    const redisService = redisDocs.find((d) => d.kind === 'Service')
    const api = withRedis.find((d) => d.kind === 'Deployment' && !isRedis(d))
    const apiService = withRedis.find((d) => d.kind === 'Service' && !isRedis(d))

    // The service's CACHE_URL names the Redis Service and its port, and that Service selects the Redis pods only.
    const cacheUrl = new URL(envOf(api.spec.template.spec.containers[0])['CACHE_URL'] ?? 'missing://')
    t.equal(cacheUrl.protocol, 'redis:', 'CACHE_URL is a redis:// URL')
    t.equal(cacheUrl.hostname, redisService.metadata.name, 'CACHE_URL names the Redis Service')
    t.ok((redisService.spec.ports as any[]).some((p) => String(p.port) === cacheUrl.port), `CACHE_URL port ${cacheUrl.port} is the Service's`)
    const redisPod = redis.spec.template
    t.ok(matches(redisService.spec.selector, redisPod.metadata.labels), 'the Redis Service selects the Redis pods')
    t.notOk(matches(redisService.spec.selector, api.spec.template.metadata.labels), '…and not the service pods')
    t.notOk(matches(apiService.spec.selector, redisPod.metadata.labels), "the service's Service does not select Redis")
    const redisPort = (redisPod.spec.containers[0].ports as any[]).find((p) => p.name === redisService.spec.ports[0].targetPort)
    t.ok(redisPort, 'the Redis Service targets a named container port')

    // A cache: no persistence, bounded by maxmemory under the memory limit, LRU eviction.
    const args: string[] = redisPod.spec.containers[0].args
    const arg = (name: string) => args[args.indexOf(name) + 1]
    t.equal(arg('--save'), '', 'no RDB snapshots')
    t.equal(arg('--appendonly'), 'no', 'no AOF')
    t.equal(arg('--maxmemory-policy'), 'allkeys-lru', 'evicts least recently used keys')
    const mib = (q: string) => Number(/^(\d+)(mb|Mi)$/.exec(q)?.[1] ?? Number.NaN)
    t.ok(mib(arg('--maxmemory')!) < mib(redisPod.spec.containers[0].resources.limits.memory), `maxmemory ${arg('--maxmemory')} below the limit ${redisPod.spec.containers[0].resources.limits.memory}`)
    checkHardening(t, redisPod.spec, 'Redis Deployment')
    t.match(redisPod.spec.containers[0].image, /^redis:\d+\.\d+\.\d+/, 'a pinned Redis image')

    // Everything else is the CPU overlay unchanged.
    const withoutEnv = (d: any) => (d.kind === 'Deployment' ? { ...d, spec: { ...d.spec, template: { ...d.spec.template, spec: { ...d.spec.template.spec, containers: d.spec.template.spec.containers.map((c: any) => ({ ...c, env: (c.env ?? []).filter((e: any) => e.name !== 'CACHE_URL') })) } } } } : d)
    t.same(withRedis.filter((d) => !isRedis(d)).map(withoutEnv), cpu, 'the rest is overlays/cpu, CACHE_URL aside')
    t.equal(envOf(cpu.find((d) => d.kind === 'Deployment').spec.template.spec.containers[0])['CACHE_URL'], undefined, 'overlays/cpu itself has no CACHE_URL (in-process cache)')
  })

  t.test('k8s/batch: an indexed Job that scores shard $(JOB_COMPLETION_INDEX)/N', async (t) => {
    const docs = rendered['k8s/batch']
    if (!docs) return t.fail('not rendered')
    t.same(docs.map((d) => d.kind), ['Job'], 'only the Job')
    const job = docs[0]
    t.equal(job.spec.completionMode, 'Indexed', 'Indexed completion mode')
    t.equal(job.spec.parallelism, job.spec.completions, 'parallelism equals completions')
    const c = job.spec.template.spec.containers[0]
    const argv: string[] = [...(c.command ?? []), ...(c.args ?? [])]
    t.same(argv.slice(0, 3), ['node', 'dist/cli/main.js', 'batch'], 'runs the nima-serve batch CLI')
    const shard = argv[argv.indexOf('--shard') + 1]
    t.equal(shard, `$(JOB_COMPLETION_INDEX)/${job.spec.completions}`, '--shard INDEX/N with N = completions')
    t.ok((c.env as any[]).some((e) => e.name === 'JOB_COMPLETION_INDEX'), 'JOB_COMPLETION_INDEX is declared, so $(...) expands')
    t.equal(job.spec.template.spec.restartPolicy, 'Never', 'failed pods are replaced, not restarted in place')
    checkHardening(t, job.spec.template.spec, 'Job')
  })
}
