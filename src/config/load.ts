import { Value } from '@sinclair/typebox/value'
import { TypeCompiler } from '@sinclair/typebox/compiler'
import { kFailureKind } from '../errors.js'
import { ConfigSchema, type RawConfig } from './schema.js'

export interface Config extends RawConfig {
  readonly models: readonly string[]
  readonly executionProviders: readonly ExecutionProviderName[]
  readonly combinedWeights: Readonly<Record<string, number>>
  readonly urlAllowlist: readonly string[]
  readonly apiKeys: readonly string[]
  /** CORS_ORIGINS split; empty: CORS off. */
  readonly corsOrigins: readonly string[]
}

export type ExecutionProviderName = 'cpu' | 'cuda' | 'webgpu'

const check = TypeCompiler.Compile(ConfigSchema)
const COMBINED_WEIGHTS_GRAMMAR = new RegExp(ConfigSchema.properties.COMBINED_WEIGHTS.pattern!)

export class ConfigError extends Error {
  override name = 'ConfigError'
  readonly [kFailureKind] = 'usage' as const
}

/** A variable's value, or undefined when it is absent or empty: an empty variable is unset. */
export function envValue(env: Record<string, string | undefined>, key: string): string | undefined {
  const v = env[key]
  return v === undefined || v === '' ? undefined : v
}

const list = (s: string): string[] => s.split(',').map((x) => x.trim()).filter((x) => x.length > 0)

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v)
    Object.freeze(value)
  }
  return value
}

function redisUrlOk(value: string): boolean {
  try {
    const u = new URL(value)
    return (u.protocol === 'redis:' || u.protocol === 'rediss:') && u.hostname !== ''
  } catch {
    return false
  }
}

/**
 * Reads the configuration once at start-up: unknown env vars are ignored, known ones
 * are converted, validated and frozen. A bad value fails with a message naming the
 * variable, what it expects and what arrived.
 */
export function loadConfig(env: Record<string, string | undefined> = process.env, overrides: Partial<RawConfig> = {}): Config {
  const picked: Record<string, unknown> = {}
  for (const key of Object.keys(ConfigSchema.properties)) {
    const v = envValue(env, key)
    if (v !== undefined) picked[key] = v
  }
  Object.assign(picked, overrides)
  const withDefaults = Value.Default(ConfigSchema, Value.Convert(ConfigSchema, picked))
  if (!check.Check(withDefaults)) {
    const problems = [...check.Errors(withDefaults)].map((e) => {
      const key = e.path.replace(/^\//, '')
      const schema = (ConfigSchema.properties as Record<string, { description?: string }>)[key]
      return `${key}: ${e.message} (got ${JSON.stringify(picked[key])}${schema?.description ? `; ${schema.description}` : ''})`
    })
    throw new ConfigError(`invalid configuration:\n  ${[...new Set(problems)].join('\n  ')}`)
  }
  const raw = withDefaults as RawConfig
  let combinedWeights: Record<string, number>
  try {
    combinedWeights = parseCombinedWeights(raw.COMBINED_WEIGHTS)
  } catch (err) {
    throw new ConfigError(`invalid configuration:\n  COMBINED_WEIGHTS: ${(err as Error).message}`)
  }
  // A budget smaller than one largest upload would refuse that upload forever, with a 503 that says "retry".
  const largestUpload = Math.max(raw.BODY_LIMIT_BYTES, raw.RANK_UPLOAD_MAX_BYTES)
  if (raw.UPLOAD_BUDGET_BYTES < largestUpload) {
    const which = raw.RANK_UPLOAD_MAX_BYTES > raw.BODY_LIMIT_BYTES ? 'RANK_UPLOAD_MAX_BYTES' : 'BODY_LIMIT_BYTES'
    throw new ConfigError(`invalid configuration:\n  UPLOAD_BUDGET_BYTES: must be at least ${which} (${largestUpload}) (got ${raw.UPLOAD_BUDGET_BYTES})`)
  }
  if (raw.CACHE_URL !== '' && !redisUrlOk(raw.CACHE_URL)) {
    throw new ConfigError(`invalid configuration:\n  CACHE_URL: must be redis://[user:password@]host[:port][/db] or rediss://… (got a value that does not parse as one)`)
  }
  const config: Config = {
    ...raw,
    models: [...new Set(list(raw.MODELS))],
    executionProviders: [...new Set(list(raw.EXECUTION_PROVIDERS))] as ExecutionProviderName[],
    combinedWeights,
    urlAllowlist: list(raw.URL_ALLOWLIST),
    apiKeys: list(raw.API_KEYS),
    corsOrigins: list(raw.CORS_ORIGINS),
  }
  return deepFreeze(config)
}

/**
 * `id=weight,…` as weights ≥ 0: COMBINED_WEIGHTS' grammar (the pattern of its schema), for
 * the setting and for a flag that takes the same list (`calibrate --weights`). Throws a
 * RangeError whose message its caller prefixes with the setting's or flag's name.
 */
export function parseCombinedWeights(text: string): Record<string, number> {
  if (!COMBINED_WEIGHTS_GRAMMAR.test(text)) throw new RangeError(`expected id=weight pairs separated by commas (e.g. aesthetic=0.6,technical=0.4), got ${JSON.stringify(text)}`)
  const weights: Record<string, number> = {}
  for (const pair of text.split(',')) {
    const [id, value] = pair.split('=') as [string, string]
    const weight = Number(value)
    if (!Number.isFinite(weight)) throw new RangeError(`weight of ${id} must be a number >= 0 (got ${JSON.stringify(value)})`)
    weights[id] = weight
  }
  return weights
}
