import { execFile } from 'node:child_process'
import { repo } from './helpers.js'

/**
 * Running the built image the way Kubernetes would: a pod spec and one of its containers
 * (read from k8s/, so the test and the manifests cannot drift) become the container
 * engine's `run` flags. Every engine command goes through scripts/image/engine.sh, the
 * home of the flags this host needs (podman with runc, cgroupfs, explicit ulimits).
 */

export interface EngineResult {
  code: number
  stdout: string
  stderr: string
}

/** scripts/image/engine.sh ARGS: never throws; the exit status is in `code`. */
export function engine(args: string[], options: { timeoutMs?: number } = {}): Promise<EngineResult> {
  return new Promise((resolve) => {
    execFile(repo('scripts/image/engine.sh'), args, { cwd: repo(), timeout: options.timeoutMs ?? 60_000, maxBuffer: 64 * 1024 * 1024, encoding: 'utf8' }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1
      resolve({ code, stdout, stderr })
    })
  })
}

/** Kubernetes resource quantities: CPUs ("2", "500m") or bytes ("64Mi", "3Gi", "1G"). */
export function quantity(text: string | number): number {
  const m = /^(\d+(?:\.\d+)?)(m|k|M|G|T|Ki|Mi|Gi|Ti)?$/.exec(String(text))
  if (!m) throw new Error(`unsupported quantity ${JSON.stringify(text)}`)
  const factor: Record<string, number> = { '': 1, m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3, Ti: 1024 ** 4 }
  return Number(m[1]) * (factor[m[2] ?? ''] ?? NaN)
}

const POD_SECURITY = new Set(['runAsNonRoot', 'runAsUser', 'runAsGroup', 'fsGroup', 'seccompProfile'])
const CONTAINER_SECURITY = new Set(['runAsNonRoot', 'runAsUser', 'runAsGroup', 'allowPrivilegeEscalation', 'readOnlyRootFilesystem', 'capabilities', 'seccompProfile'])

export interface PodRunOptions {
  /** Host folders for the pod's volumes that are not in-memory emptyDirs (claims, disk emptyDirs), by volume name. */
  hostPaths?: Record<string, string>
  /** Values of `fieldRef` env variables, by field path (e.g. the Job's completion index). */
  fieldRefs?: Record<string, string>
  /** Publish the container ports on 127.0.0.1 (default true; false for one-off commands). */
  publish?: boolean
}

export interface PodRun {
  /** Flags for `engine run`, before the image. */
  flags: string[]
  /** What goes after the image: the container's command and args, $(VAR) expanded. */
  argv: string[]
  /** The container's environment as the manifest sets it. */
  env: Record<string, string>
  /** Container ports; each is published on 127.0.0.1 at a port the engine picks. */
  ports: number[]
  /** The uid and gid the process runs as. */
  user: { uid: number; gid: number }
}

/**
 * The engine flags for `container` of `pod` (a PodSpec). A securityContext field, volume
 * kind or env source this does not know is an error, not a silent omission, so a manifest
 * change cannot leave the test running the image under weaker settings than the cluster.
 */
export function podRun(pod: any, container: any, options: PodRunOptions = {}): PodRun {
  const podSec = pod.securityContext ?? {}
  const sec = container.securityContext ?? {}
  for (const key of Object.keys(podSec)) if (!POD_SECURITY.has(key)) throw new Error(`pod securityContext.${key}: not translated to engine flags (test/deploy/container.ts)`)
  for (const key of Object.keys(sec)) if (!CONTAINER_SECURITY.has(key)) throw new Error(`container securityContext.${key}: not translated to engine flags (test/deploy/container.ts)`)
  const flags: string[] = []

  const uid = sec.runAsUser ?? podSec.runAsUser
  const gid = sec.runAsGroup ?? podSec.runAsGroup ?? uid
  if (uid === undefined) throw new Error('no runAsUser: the uid would be the image USER; set it in the manifest')
  if ((sec.runAsNonRoot ?? podSec.runAsNonRoot) === true && Number(uid) === 0) throw new Error('runAsNonRoot with runAsUser 0: the kubelet would refuse to start it')
  flags.push('--user', `${uid}:${gid}`)
  if (podSec.fsGroup !== undefined) flags.push('--group-add', String(podSec.fsGroup))
  const seccomp = (sec.seccompProfile ?? podSec.seccompProfile)?.type
  if (seccomp === 'Unconfined') flags.push('--security-opt', 'seccomp=unconfined')
  else if (seccomp !== undefined && seccomp !== 'RuntimeDefault') throw new Error(`seccompProfile ${seccomp}: not translated`)
  if (sec.allowPrivilegeEscalation === false) flags.push('--security-opt', 'no-new-privileges')
  if (sec.readOnlyRootFilesystem === true) flags.push('--read-only')
  // Kubernetes starts from the runtime's default capability set, as docker and podman do.
  for (const cap of sec.capabilities?.drop ?? []) flags.push('--cap-drop', String(cap))
  for (const cap of sec.capabilities?.add ?? []) flags.push('--cap-add', String(cap))

  const limits = container.resources?.limits ?? {}
  if (limits.cpu !== undefined) flags.push('--cpus', String(quantity(limits.cpu)))
  if (limits.memory !== undefined) flags.push('--memory', String(Math.round(quantity(limits.memory))))

  const volumes = new Map<string, any>((pod.volumes ?? []).map((v: any) => [v.name, v]))
  for (const mount of container.volumeMounts ?? []) {
    const volume = volumes.get(mount.name)
    if (!volume) throw new Error(`volumeMount ${mount.name}: no such volume`)
    if (volume.emptyDir?.medium === 'Memory') {
      // An emptyDir in memory is a tmpfs, world-writable like every emptyDir, exec allowed.
      const size = volume.emptyDir.sizeLimit === undefined ? '' : `,size=${Math.round(quantity(volume.emptyDir.sizeLimit))}`
      flags.push('--tmpfs', `${mount.mountPath}:rw,exec,mode=1777${size}`)
    } else if (volume.emptyDir !== undefined || volume.persistentVolumeClaim !== undefined) {
      const host = options.hostPaths?.[mount.name]
      if (host === undefined) throw new Error(`volume ${mount.name}: give a host folder for it (hostPaths)`)
      flags.push('--volume', `${host}:${mount.mountPath}${mount.readOnly === true ? ':ro' : ''}`)
    } else {
      throw new Error(`volume ${mount.name}: kind ${Object.keys(volume).filter((k) => k !== 'name').join()} not translated`)
    }
  }

  const env: Record<string, string> = {}
  for (const e of container.env ?? []) {
    if (e.value !== undefined) env[e.name] = String(e.value)
    else if (e.valueFrom?.resourceFieldRef) {
      const ref = e.valueFrom.resourceFieldRef
      const [kind, resource] = String(ref.resource).split('.')
      const value = container.resources?.[kind === 'limits' ? 'limits' : 'requests']?.[resource as string]
      if (value === undefined) throw new Error(`env ${e.name}: ${ref.resource} is not set`)
      // The kubelet rounds up to whole divisors (limits.cpu 1500m with divisor 1 gives 2).
      env[e.name] = String(Math.ceil(quantity(value) / quantity(ref.divisor ?? 1)))
    } else if (e.valueFrom?.fieldRef) {
      const value = options.fieldRefs?.[e.valueFrom.fieldRef.fieldPath]
      if (value === undefined) throw new Error(`env ${e.name}: give a value for ${e.valueFrom.fieldRef.fieldPath} (fieldRefs)`)
      env[e.name] = value
    } else throw new Error(`env ${e.name}: source not translated`)
  }
  for (const [k, v] of Object.entries(env)) flags.push('--env', `${k}=${v}`)

  const ports = (container.ports ?? []).map((p: any) => Number(p.containerPort))
  if (options.publish !== false) for (const port of ports) flags.push('--publish', `127.0.0.1::${port}`)

  // $(VAR) in command and args expands from the container's env, as the kubelet does.
  const expand = (s: string) => s.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (whole, name: string) => env[name] ?? whole)
  const command = ((container.command ?? []) as string[]).map(expand)
  const args = ((container.args ?? []) as string[]).map(expand)
  const argv = [...command.slice(1), ...args]
  if (command.length > 0) flags.push('--entrypoint', command[0]!)
  return { flags, argv, env, ports, user: { uid: Number(uid), gid: Number(gid) } }
}
