import t from 'tap'
import { ConfigError } from '../../src/config/load.js'
import { tracingSettings } from '../../src/tracing/settings.js'

t.test('off unless an OTLP endpoint or the otlp exporter is asked for', async (t) => {
  t.equal(tracingSettings({}), undefined, 'nothing set: off, the SDK is never loaded')
  t.equal(tracingSettings({ OTEL_SERVICE_NAME: 'nima', OTEL_TRACES_SAMPLER: 'always_on' }), undefined, 'a sampler or a name alone turn nothing on')
  t.equal(tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: '' }), undefined, 'an empty value is an unset one')
  t.same(tracingSettings({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }), { protocol: 'http/protobuf' }, 'the spec default protocol')
  t.same(tracingSettings({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://collector:4318/v1/traces' }), { protocol: 'http/protobuf' })
  t.same(tracingSettings({ OTEL_TRACES_EXPORTER: 'otlp' }), { protocol: 'http/protobuf' }, 'otlp with no endpoint: the SDK default, localhost:4318')
})

t.test('OTEL_SDK_DISABLED and OTEL_TRACES_EXPORTER=none turn it off whatever else is set', async (t) => {
  const on = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }
  t.equal(tracingSettings({ ...on, OTEL_SDK_DISABLED: 'true' }), undefined)
  t.equal(tracingSettings({ ...on, OTEL_SDK_DISABLED: 'TRUE' }), undefined, 'case-insensitive, as the spec says')
  t.ok(tracingSettings({ ...on, OTEL_SDK_DISABLED: 'false' }))
  t.ok(tracingSettings({ ...on, OTEL_SDK_DISABLED: '1' }), 'only "true" disables (the spec: anything else is false)')
  t.equal(tracingSettings({ ...on, OTEL_TRACES_EXPORTER: 'none' }), undefined)
})

t.test('the protocol: http/json and http/protobuf, the traces-specific variable first', async (t) => {
  const on = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }
  t.same(tracingSettings({ ...on, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json' }), { protocol: 'http/json' })
  t.same(tracingSettings({ ...on, OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json', OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/protobuf' }), { protocol: 'http/protobuf' })
})

t.test('what the service cannot honour is a ConfigError naming the variable and the value', async (t) => {
  const on = { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' }
  t.throws(() => tracingSettings({ ...on, OTEL_EXPORTER_OTLP_PROTOCOL: 'grpc' }), new ConfigError('OTEL_EXPORTER_OTLP_PROTOCOL must be one of http/protobuf, http/json, got "grpc" (gRPC is not built in: point http/protobuf at the collector\'s OTLP/HTTP port, 4318)'))
  t.throws(() => tracingSettings({ ...on, OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/xml' }), { name: 'ConfigError', message: /^OTEL_EXPORTER_OTLP_TRACES_PROTOCOL must be one of .*got "http\/xml"$/ })
  t.throws(() => tracingSettings({ OTEL_TRACES_EXPORTER: 'zipkin' }), { name: 'ConfigError', message: /^OTEL_TRACES_EXPORTER must be otlp or none .*got "zipkin"$/ })
  t.equal(tracingSettings({ OTEL_SDK_DISABLED: 'true', OTEL_TRACES_EXPORTER: 'zipkin' }), undefined, 'disabled: nothing else is read')
})
