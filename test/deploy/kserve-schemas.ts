/**
 * JSON schemas for the two KServe custom resources k8s/kserve/ uses. Neither
 * kubernetes-models nor any @kubernetes-models package carries the KServe CRDs, so these are
 * written by hand from the CRDs' field names (kserve/kserve config/crd/full,
 * serving.kserve.io_servingruntimes.yaml v1alpha1 and serving.kserve.io_inferenceservices.yaml
 * v1beta1, read at commit aaac4e29, August 2026): every field those CRDs define at the levels
 * listed is allowed (anything else is an unknown field, as with strict field validation), and
 * the fields our manifests use are typed. Core Kubernetes types inside them (containers,
 * volumes, the pod security context) are checked by the caller against kubernetes-models.
 */
const any = {}
const fields = (names: string[], typed: Record<string, object> = {}) => Object.fromEntries(names.map((n) => [n, typed[n] ?? any]))

const metadata = {
  type: 'object',
  required: ['name'],
  properties: { name: { type: 'string', pattern: '^[a-z0-9]([-a-z0-9]*[a-z0-9])?$', maxLength: 63 }, labels: { type: 'object', additionalProperties: { type: 'string' } }, annotations: { type: 'object', additionalProperties: { type: 'string' } }, namespace: { type: 'string' } },
}

/** The protocols KServe knows (pkg/constants: v1, v2, grpc-v1, grpc-v2). */
const protocol = { type: 'string', enum: ['v1', 'v2', 'grpc-v1', 'grpc-v2'] }

export const servingRuntimeSchema = {
  type: 'object',
  required: ['apiVersion', 'kind', 'metadata', 'spec'],
  additionalProperties: false,
  properties: {
    apiVersion: { const: 'serving.kserve.io/v1alpha1' },
    kind: { const: 'ServingRuntime' },
    metadata,
    spec: {
      type: 'object',
      required: ['containers'],
      additionalProperties: false,
      properties: fields(
        ['affinity', 'annotations', 'builtInAdapter', 'containers', 'disabled', 'grpcDataEndpoint', 'grpcEndpoint', 'hostIPC', 'httpDataEndpoint', 'imagePullSecrets', 'labels', 'multiModel', 'nodeSelector', 'protocolVersions', 'replicas', 'resourceClaims', 'schedulerName', 'storageHelper', 'supportedModelFormats', 'tolerations', 'volumes', 'workerSpec'],
        {
          containers: { type: 'array', minItems: 1, items: { type: 'object', required: ['name'], properties: { name: { type: 'string' } } } },
          volumes: { type: 'array', items: { type: 'object', required: ['name'], properties: { name: { type: 'string' } } } },
          disabled: { type: 'boolean' },
          multiModel: { type: 'boolean' },
          protocolVersions: { type: 'array', items: protocol },
          supportedModelFormats: {
            type: 'array',
            items: {
              type: 'object',
              required: ['name'],
              additionalProperties: false,
              properties: { name: { type: 'string' }, version: { type: 'string' }, autoSelect: { type: 'boolean' }, priority: { type: 'integer', minimum: 1 } },
            },
          },
        },
      ),
    },
  },
}

export const inferenceServiceSchema = {
  type: 'object',
  required: ['apiVersion', 'kind', 'metadata', 'spec'],
  additionalProperties: false,
  properties: {
    apiVersion: { const: 'serving.kserve.io/v1beta1' },
    kind: { const: 'InferenceService' },
    metadata,
    spec: {
      type: 'object',
      required: ['predictor'],
      additionalProperties: false,
      properties: fields(['canary', 'explainer', 'predictor', 'transformer'], {
        predictor: {
          type: 'object',
          additionalProperties: false,
          properties: fields(
            // The predictor's own fields, then the pod's (a predictor is a pod spec too).
            ['activeDeadlineSeconds', 'affinity', 'annotations', 'autoScaling', 'automountServiceAccountToken', 'batcher', 'canaryTrafficPercent', 'containerConcurrency', 'containers', 'deploymentStrategy', 'dnsConfig', 'dnsPolicy', 'enableServiceLinks', 'hostAliases', 'hostIPC', 'hostNetwork', 'hostPID', 'hostUsers', 'hostname', 'hostnameOverride', 'huggingface', 'imagePullSecrets', 'initContainers', 'labels', 'lightgbm', 'logger', 'maxReplicas', 'minReplicas', 'model', 'name', 'nodeName', 'nodeSelector', 'onnx', 'os', 'overhead', 'paddle', 'pmml', 'preemptionPolicy', 'priority', 'priorityClassName', 'pytorch', 'readinessGates', 'resourceClaims', 'resources', 'restartPolicy', 'runtimeClassName', 'scaleMetric', 'scaleMetricType', 'scaleTarget', 'schedulerName', 'schedulingGates', 'securityContext', 'serviceAccount', 'serviceAccountName', 'setHostnameAsFQDN', 'shareProcessNamespace', 'sklearn', 'storageContainerName', 'storageUris', 'subdomain', 'tensorflow', 'terminationGracePeriodSeconds', 'timeout', 'tolerations', 'topologySpreadConstraints', 'triton', 'volumes', 'workerSpec', 'xgboost'],
            {
              minReplicas: { type: 'integer', minimum: 0 },
              maxReplicas: { type: 'integer', minimum: 0 },
              terminationGracePeriodSeconds: { type: 'integer', minimum: 0 },
              automountServiceAccountToken: { type: 'boolean' },
              securityContext: { type: 'object' },
              model: {
                type: 'object',
                required: ['modelFormat'],
                additionalProperties: false,
                properties: fields(
                  // The model's own fields, then a container's (a model spec embeds one).
                  ['args', 'command', 'confidential', 'env', 'envFrom', 'image', 'imagePullPolicy', 'lifecycle', 'livenessProbe', 'modelFormat', 'name', 'ports', 'protocolVersion', 'readinessProbe', 'resizePolicy', 'resources', 'restartPolicy', 'restartPolicyRules', 'runtime', 'runtimeVersion', 'securityContext', 'startupProbe', 'stdin', 'stdinOnce', 'storage', 'storageUri', 'terminationMessagePath', 'terminationMessagePolicy', 'tty', 'volumeDevices', 'volumeMounts', 'workingDir'],
                  {
                    modelFormat: { type: 'object', required: ['name'], additionalProperties: false, properties: { name: { type: 'string' }, version: { type: 'string' } } },
                    runtime: { type: 'string' },
                    protocolVersion: protocol,
                    storageUri: { type: 'string' },
                  },
                ),
              },
            },
          ),
        },
      }),
    },
  },
}
