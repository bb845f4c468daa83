import { execFileSync } from 'node:child_process'
import t from 'tap'
import { Ajv } from 'ajv'
import { Container } from 'kubernetes-models/v1/Container'
import { PodSecurityContext } from 'kubernetes-models/v1/PodSecurityContext'
import { Volume } from 'kubernetes-models/v1/Volume'
import { loadConfig } from '../../src/config/load.js'
import { ConfigSchema } from '../../src/config/schema.js'
import { findKustomize, parseYamlDocuments, readYaml, repo } from './helpers.js'
import { inferenceServiceSchema, servingRuntimeSchema } from './kserve-schemas.js'
import { unknownFieldErrors } from './unknown-fields.js'

// k8s/kserve/: a KServe ServingRuntime running the image with protocol v2, and an
// InferenceService on it. Validated against the KServe CRD fields (kserve-schemas.ts, written
// from the CRDs since no package carries them) and, inside them, the core Kubernetes types
// against kubernetes-models; then wired: the probes hit the OIP routes the service serves.

const kustomization = readYaml('k8s/kserve/kustomization.yaml')
const docs: any[] = (kustomization.resources as string[]).flatMap((file) => [readYaml('k8s/kserve', file)])
const only = (kind: string) => docs.find((d) => d.kind === kind)
const runtime = only('ServingRuntime')
const isvc = only('InferenceService')
const openapi = readYaml('openapi.yaml')

const ajv = new Ajv({ allErrors: true, strict: true })
const validate = { ServingRuntime: ajv.compile(servingRuntimeSchema), InferenceService: ajv.compile(inferenceServiceSchema) }

t.test('the kustomization lists a ServingRuntime and an InferenceService, each valid against its CRD fields', async (t) => {
  t.same(docs.map((d) => d.kind).sort(), ['InferenceService', 'ServingRuntime'])
  for (const doc of docs) {
    const check = validate[doc.kind as keyof typeof validate]
    t.ok(check(doc), `${doc.kind}/${doc.metadata.name} validates ${JSON.stringify(check.errors ?? [])}`)
  }
  // The checks bite: a misspelt field at each level is refused.
  const typo = structuredClone(isvc)
  typo.spec.predictor.model.protocolVerison = 'v2'
  t.notOk(validate.InferenceService(typo), 'a misspelt model field is refused')
  const typo2 = structuredClone(runtime)
  typo2.spec.protocolVersion = ['v2']
  t.notOk(validate.ServingRuntime(typo2), 'a misspelt runtime field is refused')
})

t.test('core Kubernetes types inside them validate against kubernetes-models, with no unknown field', async (t) => {
  const typed = [
    ...runtime.spec.containers.map((c: any) => ({ label: `container ${c.name}`, typeName: 'IContainer', module: 'kubernetes-models/v1/Container', value: c, validate: () => new Container(c).validate() })),
    ...(runtime.spec.volumes ?? []).map((v: any) => ({ label: `volume ${v.name}`, typeName: 'IVolume', module: 'kubernetes-models/v1/Volume', value: v, validate: () => new Volume(v).validate() })),
    { label: 'predictor securityContext', typeName: 'IPodSecurityContext', module: 'kubernetes-models/v1/PodSecurityContext', value: isvc.spec.predictor.securityContext, validate: () => new PodSecurityContext(isvc.spec.predictor.securityContext).validate() },
  ]
  for (const x of typed) t.doesNotThrow(x.validate, `${x.label} validates`)
  const canary = { label: 'canary', typeName: 'IContainer', module: 'kubernetes-models/v1/Container', value: { name: 'c', imagePullPolicyy: 'Always' } }
  const errors = unknownFieldErrors([...typed, canary])
  t.equal(errors.filter((e) => e.startsWith('canary:')).length, 1, 'a planted typo is caught')
  t.same(errors.filter((e) => !e.startsWith('canary:')), [], 'no field the API does not define')
})

t.test('wiring: protocol v2, the runtime and model format matched, probes on the OIP routes, a valid config', async (t) => {
  t.ok(runtime.spec.protocolVersions.includes('v2'), 'the runtime speaks protocol v2')
  const model = isvc.spec.predictor.model
  t.equal(model.protocolVersion, 'v2', 'the InferenceService asks for protocol v2')
  t.equal(model.runtime, runtime.metadata.name, 'the InferenceService names the runtime')
  t.ok(runtime.spec.supportedModelFormats.some((f: any) => f.name === model.modelFormat.name), `model format ${model.modelFormat.name} is one the runtime supports`)
  t.equal(model.storageUri, undefined, 'no storageUri: the models are in the image')

  t.equal(runtime.spec.containers.length, 1)
  const c = runtime.spec.containers[0]
  t.equal(c.name, 'kserve-container', 'KServe finds the serving container by name')
  const env: Record<string, string> = Object.fromEntries((c.env as any[]).filter((e) => typeof e.value === 'string').map((e) => [e.name, e.value]))
  const known = Object.keys(ConfigSchema.properties)
  t.doesNotThrow(() => loadConfig(Object.fromEntries(Object.entries(env).filter(([k]) => known.includes(k)))), "env passes the service's config validation")
  t.equal(c.ports.length, 1, 'one port (Knative allows no more)')
  t.equal(c.ports[0].containerPort, Number(env['PORT']), 'the port is PORT')
  t.equal(c.env.find((e: any) => e.name === 'CPU_LIMIT')?.valueFrom?.resourceFieldRef?.containerName, c.name, 'CPU_LIMIT reads this container')
  for (const [probe, path] of [['readinessProbe', '/v2/health/ready'], ['livenessProbe', '/v2/health/live']] as const) {
    t.equal(c[probe]?.httpGet?.path, path, `${probe}: ${path}`)
    t.equal(c[probe]?.httpGet?.port, c.ports[0].containerPort, `${probe} on the container port`)
    t.ok(openapi.paths[path]?.get, `${path} is a route of the service (openapi.yaml)`)
  }
  t.equal(c.securityContext?.readOnlyRootFilesystem, true)
  t.equal(c.securityContext?.allowPrivilegeEscalation, false)
  t.ok(c.securityContext?.capabilities?.drop?.includes('ALL'))
  t.ok(c.volumeMounts.some((m: any) => m.mountPath === '/tmp' && runtime.spec.volumes.some((v: any) => v.name === m.name && v.emptyDir)), 'writable /tmp is an emptyDir')
  for (const r of ['cpu', 'memory']) t.ok(c.resources?.requests?.[r] && c.resources?.limits?.[r], `requests and limits ${r}`)
  const p = isvc.spec.predictor
  t.equal(p.securityContext.runAsNonRoot, true)
  t.equal(p.automountServiceAccountToken, false)
  t.ok(p.terminationGracePeriodSeconds >= 5 + 10 + 1, 'grace covers preStop + SHUTDOWN_GRACE_MS')
})

const kustomize = findKustomize()
t.test('kustomize renders k8s/kserve with the image set', { skip: 'missing' in kustomize ? `no kustomize: ${kustomize.missing}` : false }, async (t) => {
  if ('missing' in kustomize) return
  const rendered = parseYamlDocuments(execFileSync(kustomize.command, [...kustomize.args, repo('k8s/kserve')], { encoding: 'utf8' }))
  t.same(rendered.map((d) => d.kind).sort(), ['InferenceService', 'ServingRuntime'])
  const image = rendered.find((d) => d.kind === 'ServingRuntime').spec.containers[0].image
  const set = kustomization.images[0]
  t.equal(image, `${set.newName}:${set.newTag}`, 'the images entry reaches the runtime container')
})
