/**
 * Builds the effective configuration from its sources, lowest precedence first:
 * embedded defaults < JSON file < environment < command line. A key given by a higher source replaces
 * the lower value entirely (lists are replaced, not appended to). The result is checked and deep-frozen.
 */
import { readFileSync } from 'node:fs';
import { ConfigError } from '../errors.js';
import { KEYS, type KeySpec, keySpec } from './keys.js';
import { checkConfig, defaults, unknownKey, validateEntries, validateValue } from './schema.js';
import type { Config } from './types.js';

export interface LoadOptions {
  /** JSON config file; omitted or undefined: defaults, environment and command line only. */
  readonly file?: string | undefined;
  /** Usually `process.env`; `TURNPIKE_*` variables are read. */
  readonly env: NodeJS.ProcessEnv;
  /**
   * Options given on the command line, by key name (`'listening-port': '3478'`, `'no-udp': true`,
   * `user: ['a:b']`). Only keys actually given must be present: each one overrides file and environment.
   * Strings are converted like environment values.
   */
  readonly cli: Readonly<Record<string, unknown>>;
}

type MutableConfig = { -readonly [K in keyof Config]: Config[K] };

const ENV_PREFIX = 'TURNPIKE_';
const FILE_SUFFIX = '_FILE';

/** `listening-port` → `TURNPIKE_LISTENING_PORT`. */
export function envName(key: string): string {
  return ENV_PREFIX + key.toUpperCase().replace(/-/g, '_');
}

/** Loads, merges, checks and deep-freezes the configuration. Throws ConfigError. */
export function loadConfig(options: LoadOptions): Config {
  const merged: MutableConfig = { ...defaults() };
  if (options.file !== undefined) Object.assign(merged, readConfigFile(options.file));
  Object.assign(merged, fromEnvironment(options.env));
  Object.assign(merged, fromCommandLine(options.cli));
  return deepFreeze(checkConfig(merged));
}

/**
 * Builds the configuration from one object in the config-file shape (key names and JSON types, as
 * in `turnserver.json`): embedded defaults < `settings`. No file and no environment are read. Checked
 * like a config file (unknown keys refused, cross-field rules), then deep-frozen. Throws
 * ConfigError; `source` ends each message.
 */
export function configFromObject(settings: unknown, source = 'settings'): Config {
  const merged: MutableConfig = { ...defaults(), ...validateEntries(settings, source) };
  return deepFreeze(checkConfig(merged));
}

// ---------------------------------------------------------------------------------------------
// JSON file

/** Reads and checks a JSON config file (keys only; no defaults, no cross-field rules). */
export function readConfigFile(file: string): Partial<Config> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError('config', `cannot read ${file}: ${(error as Error).message}`, { cause: error });
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    // V8 quotes a piece of the file in some messages; drop it, the file may hold secrets.
    const reason = (error as Error).message
      .replace(/ in JSON at position \d+.*$/s, '')
      .replace(/, ".*"(\.\.\.)? is not valid JSON$/s, '');
    const at =
      locateJsonError(text) ?? Number(/at position (\d+)/.exec((error as Error).message)?.[1] ?? text.length);
    const { line, column } = lineAndColumn(text, at);
    // A coturn turnserver.conf (key=value lines) given where JSON is expected: say what to do.
    const coturn = /^\s*(#|--?[a-z][\w-]*(\s*=|\s*$)|[a-z][\w-]*(\s*=|\s*$))/m.test(
      text.trimStart().split('\n')[0] ?? '',
    )
      ? `; this looks like a coturn turnserver.conf: translate it with 'turnpike import-coturn ${file} -o turnserver.json'`
      : '';
    throw new ConfigError(
      'config',
      `${file}: invalid JSON at line ${line}, column ${column}: ${reason}${coturn}`,
      {
        cause: error,
      },
    );
  }
  return validateEntries(raw, file);
}

function lineAndColumn(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, offset);
  const lastBreak = before.lastIndexOf('\n');
  return { line: before.split('\n').length, column: offset - lastBreak };
}

/**
 * Offset of the first JSON syntax error in `text`, or undefined if it parses. V8's messages carry a
 * position for some errors only, so the position is found here (RFC 8259 grammar, no extensions).
 */
export function locateJsonError(text: string): number | undefined {
  let i = 0;
  const space = (): void => {
    while (i < text.length && ' \t\n\r'.includes(text.charAt(i))) i++;
  };
  const string = (): boolean => {
    i++; // opening quote
    while (i < text.length) {
      const c = text.charCodeAt(i);
      if (c === 0x22) {
        i++;
        return true;
      }
      if (c < 0x20) return false;
      if (c === 0x5c) {
        const next = text.charAt(i + 1);
        if (next === 'u') {
          if (!/^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) return false;
          i += 6;
        } else if (next !== '' && '"\\/bfnrt'.includes(next)) {
          i += 2;
        } else {
          return false;
        }
      } else {
        i++;
      }
    }
    return false;
  };
  const number = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
  const value = (): boolean => {
    space();
    const c = text.charAt(i);
    if (c === '{' || c === '[') {
      const close = c === '{' ? '}' : ']';
      i++;
      space();
      if (text.charAt(i) === close) {
        i++;
        return true;
      }
      for (;;) {
        if (c === '{') {
          space();
          if (text.charAt(i) !== '"' || !string()) return false;
          space();
          if (text.charAt(i) !== ':') return false;
          i++;
        }
        if (!value()) return false;
        space();
        const next = text.charAt(i);
        if (next === close) {
          i++;
          return true;
        }
        if (next !== ',') return false;
        i++;
      }
    }
    if (c === '"') return string();
    for (const literal of ['true', 'false', 'null']) {
      if (text.startsWith(literal, i)) {
        i += literal.length;
        return true;
      }
    }
    number.lastIndex = i;
    const match = number.exec(text);
    if (match === null) return false;
    i += match[0].length;
    return true;
  };
  if (!value()) return i;
  space();
  return i < text.length ? i : undefined;
}

// ---------------------------------------------------------------------------------------------
// Environment and command line: string values

const TRUE_WORDS = new Set(['true', '1', 'yes', 'on']);
const FALSE_WORDS = new Set(['false', '0', 'no', 'off']);

/**
 * Converts a string (environment value, file content, CLI argument) to the key's JSON type when it
 * reads as one; otherwise returns it unchanged so validation reports it. `split` cuts list values.
 */
function fromString(spec: KeySpec, text: string, split: (text: string) => string[]): unknown {
  switch (spec.kind) {
    case 'integer':
      return /^[+-]?\d+$/.test(text) ? Number(text) : text;
    case 'boolean': {
      const word = text.trim().toLowerCase();
      if (TRUE_WORDS.has(word)) return true;
      if (FALSE_WORDS.has(word)) return false;
      return text;
    }
    case 'enum':
      return text.trim().toLowerCase();
    case 'list':
      return split(text);
    case 'string':
      return text;
    default:
      return text;
  }
}

/** Environment lists: comma-separated, items trimmed, empty items dropped. */
const splitCommas = (text: string): string[] =>
  text
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');

/** `_FILE` lists: one item per line, verbatim (so passwords may contain commas); blank lines dropped. */
const splitLines = (text: string): string[] => text.split(/\r?\n/).filter((item) => item.trim() !== '');

/**
 * Reads `TURNPIKE_<KEY>` and `TURNPIKE_<KEY>_FILE` for every key. A `_FILE` variable names a file
 * holding the value (systemd credentials, Docker secrets); trailing line breaks are removed. Setting
 * both forms of one key is an error. Unknown `TURNPIKE_*` variables are ignored (see
 * `unknownEnvironmentVariables`): orchestrators such as Kubernetes add `<SERVICE>_PORT` variables.
 */
export function fromEnvironment(env: NodeJS.ProcessEnv): Partial<Config> {
  const out: Record<string, unknown> = {};
  for (const spec of KEYS) {
    const name = envName(spec.name);
    const direct = env[name];
    const file = env[name + FILE_SUFFIX];
    if (direct !== undefined && file !== undefined) {
      throw new ConfigError(spec.name, `both ${name} and ${name}${FILE_SUFFIX} are set; use one`);
    }
    if (direct !== undefined) {
      out[spec.field] = validateValue(
        spec,
        fromString(spec, direct, splitCommas),
        `environment variable ${name}`,
      );
    } else if (file !== undefined) {
      const source = `file ${file} from ${name}${FILE_SUFFIX}`;
      let text: string;
      try {
        text = readFileSync(file, 'utf8');
      } catch (error) {
        throw new ConfigError(spec.name, `cannot read ${source}: ${(error as Error).message}`, {
          cause: error,
        });
      }
      text = text.replace(/[\r\n]+$/, '');
      out[spec.field] = validateValue(spec, fromString(spec, text, splitLines), source);
    }
  }
  return out as Partial<Config>;
}

/** `TURNPIKE_*` variables that set no key (likely typos); the CLI warns about them. */
export function unknownEnvironmentVariables(env: NodeJS.ProcessEnv): string[] {
  const known = new Set<string>();
  for (const spec of KEYS) {
    known.add(envName(spec.name));
    known.add(envName(spec.name) + FILE_SUFFIX);
  }
  return Object.keys(env)
    .filter((name) => name.startsWith(ENV_PREFIX) && !known.has(name))
    .sort();
}

/** Checks the options given on the command line (see `LoadOptions.cli`). */
export function fromCommandLine(cli: Readonly<Record<string, unknown>>): Partial<Config> {
  const out: Record<string, unknown> = {};
  for (const [name, given] of Object.entries(cli)) {
    const spec = keySpec(name);
    if (spec === undefined) unknownKey(name, 'command line');
    let value = given;
    if (typeof given === 'string') value = fromString(spec, given, (text) => [text]);
    out[spec.field] = validateValue(spec, value, `command-line option --${name}`);
  }
  return out as Partial<Config>;
}

// ---------------------------------------------------------------------------------------------
// Helpers on a loaded configuration

function deepFreeze(config: Config): Config {
  for (const value of Object.values(config)) if (Array.isArray(value)) Object.freeze(value);
  return Object.freeze(config);
}

/** Replacement for secret values in `redact()`. */
export const REDACTED = '<redacted>';

/**
 * The configuration as a plain object keyed by key name (the config-file shape; unset optional
 * values are `null`), with secrets replaced: `static-auth-secret` items become `"<redacted>"`,
 * `user` items keep the name (`alice:<redacted>`).
 */
export function redact(config: Config): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const spec of KEYS) {
    const value: unknown = config[spec.field];
    if (Array.isArray(value)) {
      out[spec.name] = value.map((item: unknown) => {
        if (!spec.secret) return item;
        if (spec.name === 'user' && typeof item === 'string' && item.includes(':')) {
          return item.slice(0, item.indexOf(':') + 1) + REDACTED;
        }
        return REDACTED;
      });
    } else if (value === undefined) {
      out[spec.name] = null;
    } else {
      out[spec.name] = spec.secret ? REDACTED : value;
    }
  }
  return out;
}

function sameValue(a: unknown, b: unknown): boolean {
  if (Array.isArray(a) && Array.isArray(b)) {
    return a.length === b.length && a.every((item, index) => item === b[index]);
  }
  return a === b;
}

/** Names of the keys whose values differ between two configurations, in table order. */
export function diffConfig(a: Config, b: Config): string[] {
  return KEYS.filter((spec) => !sameValue(a[spec.field], b[spec.field])).map((spec) => spec.name);
}
