/**
 * Whether this process exports traces, read from OpenTelemetry's own environment variables
 * (https://opentelemetry.io/docs/specs/otel/configuration/sdk-environment-variables/), not
 * from src/config/schema.ts: the SDK reads most of them itself (endpoint, headers, timeout,
 * sampler, resource), and an operator sets them the same way for every service. Only what
 * decides whether the SDK is loaded at all, and which exporter it gets, is read here, with
 * no OpenTelemetry import: with tracing off nothing of the SDK is loaded (src/tracing/sdk.ts).
 */
import { ConfigError } from '../config/load.js'

/** The OTLP encodings over HTTP that the service can export in. */
export const OTLP_PROTOCOLS = ['http/protobuf', 'http/json'] as const
export type OtlpProtocol = (typeof OTLP_PROTOCOLS)[number]

export interface TracingSettings {
  protocol: OtlpProtocol
}

type Env = Readonly<Record<string, string | undefined>>

/** The spec's rule: an empty value is the same as an unset one. */
function read(env: Env, name: string): string | undefined {
  const value = env[name]?.trim()
  return value === undefined || value === '' ? undefined : value
}

/**
 * Off unless an OTLP endpoint is configured (OTEL_EXPORTER_OTLP_ENDPOINT or
 * OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) or OTEL_TRACES_EXPORTER=otlp asks for the default one
 * (http://localhost:4318); OTEL_SDK_DISABLED=true and OTEL_TRACES_EXPORTER=none turn it off
 * whatever else is set. A value the service cannot honour (another exporter, gRPC) is a
 * ConfigError, which the entries report like any bad configuration (exit 2).
 */
export function tracingSettings(env: Env): TracingSettings | undefined {
  if (read(env, 'OTEL_SDK_DISABLED')?.toLowerCase() === 'true') return undefined
  const exporters = read(env, 'OTEL_TRACES_EXPORTER')
    ?.split(',')
    .map((e) => e.trim().toLowerCase())
    .filter((e) => e !== '')
  const unsupported = exporters?.filter((e) => e !== 'otlp' && e !== 'none') ?? []
  if (unsupported.length > 0) {
    throw new ConfigError(`OTEL_TRACES_EXPORTER must be otlp or none (the service exports OTLP only), got ${JSON.stringify(read(env, 'OTEL_TRACES_EXPORTER'))}`)
  }
  if (exporters?.includes('none')) return undefined
  const endpoint = read(env, 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT') ?? read(env, 'OTEL_EXPORTER_OTLP_ENDPOINT')
  if (endpoint === undefined && !exporters?.includes('otlp')) return undefined

  const variable = read(env, 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL') !== undefined ? 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL' : 'OTEL_EXPORTER_OTLP_PROTOCOL'
  const protocol = read(env, variable) ?? 'http/protobuf'
  if (!(OTLP_PROTOCOLS as readonly string[]).includes(protocol)) {
    const hint = protocol === 'grpc' ? ' (gRPC is not built in: point http/protobuf at the collector\'s OTLP/HTTP port, 4318)' : ''
    throw new ConfigError(`${variable} must be one of ${OTLP_PROTOCOLS.join(', ')}, got ${JSON.stringify(protocol)}${hint}`)
  }
  return { protocol: protocol as OtlpProtocol }
}
