/**
 * Defaults and validation of the configuration, derived from the key table (`keys.ts`). A value is
 * checked in two steps: each key on its own (`validateEntries`, run once per source so errors can
 * name the file, variable or flag), then the cross-field rules on the merged result
 * (`checkConfig`).
 */
import { ConfigError } from '../errors.js';
import { show } from './checks.js';
import { assertNever, KEYS, type KeySpec, keySpec, SCHEMA_PROPERTY } from './keys.js';
import type { Config } from './types.js';

type MutableConfig = { -readonly [K in keyof Config]: Config[K] };

/** A fresh, mutable copy of the embedded defaults. */
export function defaults(): Config {
  const out: Record<string, unknown> = {};
  for (const spec of KEYS) out[spec.field] = spec.kind === 'list' ? [...spec.default] : spec.default;
  return out as unknown as Config;
}

function describe(value: unknown, secret: boolean): string {
  if (!secret) return show(value);
  if (value === null) return 'null';
  return Array.isArray(value) ? 'an array' : `a ${typeof value} (value not shown)`;
}

function fail(spec: KeySpec, problem: string, source: string): never {
  throw new ConfigError(spec.name, source === '' ? problem : `${problem} (${source})`);
}

/**
 * Checks one key's value and returns it in Config form (null → undefined for optional strings,
 * arrays copied). `source` names where it came from and is appended to messages.
 */
export function validateValue(spec: KeySpec, value: unknown, source: string): unknown {
  switch (spec.kind) {
    case 'integer':
      if (typeof value !== 'number' || !Number.isInteger(value) || value < spec.min || value > spec.max) {
        fail(spec, `must be an integer ${spec.min}-${spec.max}, got ${describe(value, spec.secret)}`, source);
      }
      return value;
    case 'boolean':
      if (typeof value !== 'boolean')
        fail(spec, `must be true or false, got ${describe(value, spec.secret)}`, source);
      return value;
    case 'enum':
      if (typeof value !== 'string' || !spec.values.includes(value)) {
        fail(spec, `must be one of ${spec.values.join(', ')}, got ${describe(value, spec.secret)}`, source);
      }
      return value;
    case 'string': {
      if (value === null && spec.default === undefined) return undefined;
      if (typeof value !== 'string')
        fail(spec, `must be a string, got ${describe(value, spec.secret)}`, source);
      const problem = spec.check?.(value);
      if (problem !== undefined) fail(spec, problem, source);
      return value;
    }
    case 'list': {
      if (!Array.isArray(value))
        fail(spec, `must be an array of strings, got ${describe(value, spec.secret)}`, source);
      const items: string[] = [];
      for (const [index, item] of value.entries()) {
        if (typeof item !== 'string') {
          fail(spec, `item ${index + 1} must be a string, got ${describe(item, spec.secret)}`, source);
        }
        const problem = spec.check?.(item);
        if (problem !== undefined) fail(spec, `item ${index + 1} ${problem}`, source);
        items.push(item);
      }
      return items;
    }
    default:
      return assertNever(spec);
  }
}

/** Edit distance, for "did you mean" on unknown keys. */
function distance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      current.push(
        Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, (previous[j - 1] ?? 0) + cost),
      );
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

/** The closest known key to `name` when it is plausibly a typo, else undefined. */
export function suggestKey(name: string): string | undefined {
  const kebab = name
    .replace(/([a-z0-9])([A-Z])/g, '$1-$2')
    .replace(/_/g, '-')
    .toLowerCase();
  let best: string | undefined;
  let bestDistance = Number.POSITIVE_INFINITY;
  for (const spec of KEYS) {
    const d = distance(kebab, spec.name);
    if (d < bestDistance) {
      best = spec.name;
      bestDistance = d;
    }
  }
  return bestDistance <= Math.max(2, Math.floor(kebab.length / 3)) ? best : undefined;
}

/** Throws the ConfigError for a key that is not in the table. */
export function unknownKey(name: string, source: string): never {
  const suggestion = suggestKey(name);
  const hint = suggestion === undefined ? '' : ` (did you mean ${suggestion}?)`;
  throw new ConfigError(name, `unknown configuration key${hint}${source === '' ? '' : ` (${source})`}`);
}

/**
 * Checks a partial configuration object (the shape of a config file: kebab-case keys, JSON types)
 * key by key, without defaults or cross-field rules. Unknown keys are errors; `$schema` is allowed.
 */
export function validateEntries(raw: unknown, source: string): Partial<Config> {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ConfigError(
      'config',
      `must be a JSON object with configuration keys, got ${show(raw)} (${source})`,
    );
  }
  const out: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(raw)) {
    if (name === SCHEMA_PROPERTY) {
      if (typeof value !== 'string')
        throw new ConfigError(name, `must be a string, got ${show(value)} (${source})`);
      continue;
    }
    const spec = keySpec(name);
    if (spec === undefined) unknownKey(name, source);
    out[spec.field] = validateValue(spec, value, source);
  }
  return out as Partial<Config>;
}

/** The cross-field rules, on a complete configuration. Returns it unchanged or throws ConfigError. */
export function checkConfig(config: Config): Config {
  if (config.minPort > config.maxPort) {
    throw new ConfigError('min-port', `must not exceed max-port (${config.maxPort}), got ${config.minPort}`);
  }
  // In fleet mode the secrets may all live in the Redis user database.
  if (config.useAuthSecret && config.staticAuthSecrets.length === 0 && config.redisUrl === undefined) {
    throw new ConfigError(
      'static-auth-secret',
      'at least one secret is required when use-auth-secret is on (or redis-url, with secrets in its user database)',
    );
  }
  if (config.cert !== undefined && config.pkey === undefined) {
    throw new ConfigError('pkey', 'is required when cert is set');
  }
  if (config.pkey !== undefined && config.cert === undefined) {
    throw new ConfigError('cert', 'is required when pkey is set');
  }
  return config;
}

/**
 * Validates a whole configuration object (a config file's content): every key checked, unknown keys
 * refused, missing keys filled from the defaults, cross-field rules applied. Not frozen.
 */
export function validate(raw: unknown, source: string): Config {
  const merged: MutableConfig = { ...defaults(), ...validateEntries(raw, source) };
  return checkConfig(merged);
}
