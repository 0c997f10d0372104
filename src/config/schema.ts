/**
 * The configuration table: one row per key, and everything derived from it (defaults, validation,
 * JSON Schema, the README's reference table, the CLI options).
 *
 * Key names are coturn's option names where coturn has the option. A value is checked in two steps:
 * each key on its own (`validateEntries`, run once per source so errors can name the file, variable
 * or flag), then the cross-field rules on the merged result (`checkConfig`).
 */
import { Buffer } from 'node:buffer';
import { isIP } from 'node:net';
import { parseIp } from '../core/ip.js';
import { ConfigError } from '../errors.js';
import type { Config, DefaultAddressFamily, LogFormat, LogLevel } from './types.js';

/** Returns a description of what is wrong with one string item, or undefined when it is fine. */
export type ItemCheck = (item: string) => string | undefined;

/** Fields shared by every row. */
interface KeyBase<F extends keyof Config> {
  /** kebab-case key (coturn option name); also the CLI flag and, upper-snake-cased, the env name. */
  readonly name: string;
  /** Field of `Config` the key fills. */
  readonly field: F;
  /** One line for the JSON Schema, `--help` and the README. */
  readonly description: string;
  /** Secret values never appear in `redact()` output or in error messages. */
  readonly secret: boolean;
}

export interface IntegerKey<F extends keyof Config = keyof Config> extends KeyBase<F> {
  readonly kind: 'integer';
  readonly min: number;
  readonly max: number;
  readonly default: number;
  /** Placeholder in `--help` (`--listening-port <port>`). */
  readonly arg: string;
}

export interface BooleanKey<F extends keyof Config = keyof Config> extends KeyBase<F> {
  readonly kind: 'boolean';
  readonly default: boolean;
}

export interface StringKey<F extends keyof Config = keyof Config> extends KeyBase<F> {
  readonly kind: 'string';
  /** undefined: the key is optional (JSON `null` or absent = unset). */
  readonly default: string | undefined;
  readonly arg: string;
  readonly check: ItemCheck | undefined;
  /** Extra JSON Schema keywords describing `check` (annotations only). */
  readonly jsonHint: Readonly<Record<string, unknown>> | undefined;
}

export interface EnumKey<F extends keyof Config = keyof Config> extends KeyBase<F> {
  readonly kind: 'enum';
  readonly values: readonly string[];
  readonly default: string;
  readonly arg: string;
}

/** A list of strings. Lists are the repeatable keys: `--user a --user b`, `"user": ["a", "b"]`. */
export interface ListKey<F extends keyof Config = keyof Config> extends KeyBase<F> {
  readonly kind: 'list';
  readonly default: readonly string[];
  readonly arg: string;
  readonly check: ItemCheck | undefined;
  readonly jsonHint: Readonly<Record<string, unknown>> | undefined;
}

export type KeySpec = IntegerKey | BooleanKey | StringKey | EnumKey | ListKey;

/** Whether the key may be given several times (on the command line) / holds a list. */
export function isRepeatable(spec: KeySpec): spec is ListKey {
  return spec.kind === 'list';
}

// ---------------------------------------------------------------------------------------------
// Item checks

/**
 * The address bytes of an IP literal, or undefined. Both node:net and the core parser must accept it:
 * the peer policy and the codec read these values with the core parser.
 */
function ipBytes(ip: string): Uint8Array | undefined {
  return isIP(ip) === 0 ? undefined : parseIp(ip);
}

function isUnspecified(ip: string): boolean {
  return ipBytes(ip)?.every((byte) => byte === 0) === true;
}

/** An IPv4 or IPv6 literal (no host names: the daemon binds and advertises these). */
export const checkIp: ItemCheck = (item) =>
  ipBytes(item) === undefined ? `must be an IPv4 or IPv6 address, got ${show(item)}` : undefined;

/** An IP literal other than 0.0.0.0 / :: (a relay address is sent to clients, so it must be real). */
export const checkSpecificIp: ItemCheck = (item) => {
  const problem = checkIp(item);
  if (problem !== undefined) return problem;
  return isUnspecified(item) ? `must be a specific address, not the wildcard ${show(item)}` : undefined;
};

/** A peer address pattern: single address, CIDR (`10.0.0.0/8`, `fc00::/7`) or range (`a-b`, same family). */
export const checkPeerPattern: ItemCheck = (item) => {
  const bad = `must be an IP address, CIDR (10.0.0.0/8) or range (10.0.0.1-10.0.0.9), got ${show(item)}`;
  const slash = item.indexOf('/');
  if (slash >= 0) {
    const address = ipBytes(item.slice(0, slash));
    const bits = item.slice(slash + 1);
    if (address === undefined || !/^\d{1,3}$/.test(bits)) return bad;
    const max = address.length * 8;
    return Number(bits) > max ? `prefix length must be 0-${max}, got ${show(item)}` : undefined;
  }
  const dash = item.indexOf('-');
  if (dash >= 0) {
    const first = ipBytes(item.slice(0, dash));
    const last = ipBytes(item.slice(dash + 1));
    if (first === undefined || last === undefined) return bad;
    if (first.length !== last.length) return `range ends must be the same address family, got ${show(item)}`;
    return Buffer.compare(first, last) > 0 ? `range start is after its end in ${show(item)}` : undefined;
  }
  return ipBytes(item) === undefined ? bad : undefined;
};

/** `public[/private]`: the address clients see, and optionally the local address it maps to (1:1 NAT). */
export const checkExternalIp: ItemCheck = (item) => {
  const [pub = '', priv, ...rest] = item.split('/');
  const bad = `must be public-ip or public-ip/private-ip, got ${show(item)}`;
  if (rest.length > 0 || checkSpecificIp(pub) !== undefined) return bad;
  if (priv === undefined) return undefined;
  if (checkSpecificIp(priv) !== undefined) return bad;
  return ipBytes(priv)?.length === ipBytes(pub)?.length
    ? undefined
    : 'public and private addresses must be the same family';
};

/**
 * `name:password` or `name:0x<32 hex digits>` (the MD5 long-term key, as made by `turnadmin -k`).
 * Never echoes the password; the name is echoed only once it is known to be separate from it.
 */
export const checkUser: ItemCheck = (item) => {
  const colon = item.indexOf(':');
  if (colon <= 0) return 'must be name:password or name:0x<32 hex digits> (value not shown)';
  const name = item.slice(0, colon);
  const password = item.slice(colon + 1);
  if (password === '') return `user ${show(name)}: password must not be empty`;
  if (/^0x/i.test(password) && !/^0x[0-9a-f]{32}$/i.test(password)) {
    return `user ${show(name)}: a password starting with 0x must be a key of exactly 32 hex digits`;
  }
  return undefined;
};

/** A shared secret: only non-empty (never echoed). */
/** `ip`, `ip:port` or `[ipv6]:port` (alternate servers). */
export const checkHostPort: ItemCheck = (item) =>
  parseHostPort(item) === undefined ? 'must be ip, ip:port or [ipv6]:port' : undefined;

export function parseHostPort(
  item: string,
  defaultPort = 3478,
): { address: string; port: number } | undefined {
  let host = item;
  let port = defaultPort;
  const bracket = /^\[([^\]]+)\](?::(\d{1,5}))?$/.exec(item);
  if (bracket !== null) {
    host = bracket[1]!;
    if (bracket[2] !== undefined) port = Number(bracket[2]);
  } else if (item.split(':').length === 2) {
    const [h, p] = item.split(':') as [string, string];
    if (!/^\d{1,5}$/.test(p)) return undefined;
    host = h;
    port = Number(p);
  }
  if (parseIp(host) === undefined || port < 1 || port > 65535) return undefined;
  return { address: host, port };
}

/** A DNS name (RFC 1123 labels) or an IP literal, without port or brackets (`public-host`). */
export const checkPublicHost: ItemCheck = (item) => {
  if (ipBytes(item) !== undefined) return undefined;
  const label = /^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$/;
  const name = item.endsWith('.') ? item.slice(0, -1) : item;
  const ok = name.length > 0 && name.length <= 253 && name.split('.').every((l) => label.test(l));
  return ok && !/^[0-9.]+$/.test(name)
    ? undefined
    : `must be a DNS name or an IP address (no port, no brackets), got ${show(item)}`;
};

export const checkSecret: ItemCheck = (item) => (item === '' ? 'must not be empty' : undefined);

/** RFC 8489 §14.9: REALM is fewer than 128 characters. */
export const checkRealm: ItemCheck = (item) => {
  if (item === '') return 'must not be empty';
  const length = [...item].length;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what we refuse
  if (/[\u0000-\u001f\u007f]/.test(item)) return `must not contain control characters, got ${show(item)}`;
  return length >= 128 ? `must be fewer than 128 characters, got ${length}` : undefined;
};

const checkPath: ItemCheck = (item) => (item === '' ? 'must not be empty' : undefined);

const IP_HINT = { anyOf: [{ format: 'ipv4' }, { format: 'ipv6' }] } as const;

// ---------------------------------------------------------------------------------------------
// Row builders: they tie each row's default to the type of its Config field.

type FieldOf<T> = {
  [K in keyof Config]-?: Config[K] extends T ? (T extends Config[K] ? K : never) : never;
}[keyof Config];

interface Common {
  readonly description: string;
  readonly secret?: boolean;
}

function integer<F extends FieldOf<number>>(
  name: string,
  field: F,
  o: Common & { min: number; max: number; default: number; arg?: string },
): IntegerKey<F> {
  return {
    kind: 'integer',
    name,
    field,
    description: o.description,
    secret: o.secret ?? false,
    min: o.min,
    max: o.max,
    default: o.default,
    arg: o.arg ?? 'n',
  };
}

function boolean<F extends FieldOf<boolean>>(
  name: string,
  field: F,
  o: Common & { default: boolean },
): BooleanKey<F> {
  return {
    kind: 'boolean',
    name,
    field,
    description: o.description,
    secret: o.secret ?? false,
    default: o.default,
  };
}

function string<F extends FieldOf<string> | FieldOf<string | undefined>>(
  name: string,
  field: F,
  o: Common & {
    default: Config[F] & (string | undefined);
    arg: string;
    check?: ItemCheck;
    jsonHint?: Record<string, unknown>;
  },
): StringKey<F> {
  return {
    kind: 'string',
    name,
    field,
    description: o.description,
    secret: o.secret ?? false,
    default: o.default,
    arg: o.arg,
    check: o.check,
    jsonHint: o.jsonHint,
  };
}

function oneOf<F extends FieldOf<LogLevel> | FieldOf<LogFormat> | FieldOf<DefaultAddressFamily>>(
  name: string,
  field: F,
  o: Common & { values: readonly Config[F][]; default: Config[F]; arg?: string },
): EnumKey<F> {
  return {
    kind: 'enum',
    name,
    field,
    description: o.description,
    secret: o.secret ?? false,
    values: o.values,
    default: o.default,
    arg: o.arg ?? 'value',
  };
}

function list<F extends FieldOf<readonly string[]>>(
  name: string,
  field: F,
  o: Common & { arg: string; check?: ItemCheck; jsonHint?: Record<string, unknown> },
): ListKey<F> {
  return {
    kind: 'list',
    name,
    field,
    description: o.description,
    secret: o.secret ?? false,
    default: [],
    arg: o.arg,
    check: o.check,
    jsonHint: o.jsonHint,
  };
}

const PORT = { min: 1, max: 65535, arg: 'port' } as const;
const INT32 = 2_147_483_647;
const LOG_LEVELS: readonly LogLevel[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];
const LOG_FORMATS: readonly LogFormat[] = ['auto', 'json', 'pretty'];

// ---------------------------------------------------------------------------------------------
// The table

/** Every configuration key, in documentation order. */
export const KEYS = [
  integer('listening-port', 'listeningPort', {
    ...PORT,
    default: 3478,
    description: 'STUN/TURN port for UDP and TCP.',
  }),
  list('listening-ip', 'listeningIps', {
    arg: 'ip',
    check: checkIp,
    jsonHint: IP_HINT,
    description: 'Address to listen on (repeatable); none means all addresses, 0.0.0.0 and ::.',
  }),
  integer('tls-listening-port', 'tlsListeningPort', {
    ...PORT,
    default: 5349,
    description:
      'TURN over TLS port (TCP); TLS starts only when cert and pkey are set. With TCP and TLS both on, each stream port serves both (told apart by the first byte), and this may equal listening-port.',
  }),
  string('cert', 'cert', {
    default: undefined,
    arg: 'file',
    check: checkPath,
    description: 'PEM certificate chain file for TLS; requires pkey. Relative to the working directory.',
  }),
  string('pkey', 'pkey', {
    default: undefined,
    arg: 'file',
    check: checkPath,
    description: 'PEM private key file for TLS; requires cert. Relative to the working directory.',
  }),
  string('realm', 'realm', {
    default: 'turnpike',
    arg: 'realm',
    check: checkRealm,
    description: 'Realm of the long-term credential mechanism (fewer than 128 characters).',
  }),
  list('user', 'users', {
    arg: 'name:password',
    secret: true,
    check: checkUser,
    jsonHint: { pattern: '^[^:]+:.+$' },
    description: 'Static user name:password, or name:0x<32 hex digits> with the MD5 key (repeatable).',
  }),
  boolean('use-auth-secret', 'useAuthSecret', {
    default: false,
    description:
      'Accept TURN REST API credentials (expiry:user, HMAC-SHA1 password); needs static-auth-secret.',
  }),
  list('static-auth-secret', 'staticAuthSecrets', {
    arg: 'secret',
    secret: true,
    check: checkSecret,
    jsonHint: { minLength: 1 },
    description:
      'Shared secret for TURN REST API credentials (repeatable, for rotation); used only with use-auth-secret.',
  }),
  integer('min-port', 'minPort', {
    ...PORT,
    default: 49152,
    description: 'Lowest relay port (UDP); must not exceed max-port.',
  }),
  integer('max-port', 'maxPort', { ...PORT, default: 65535, description: 'Highest relay port (UDP).' }),
  list('relay-ip', 'relayIps', {
    arg: 'ip',
    check: checkSpecificIp,
    jsonHint: IP_HINT,
    description: 'Address relay sockets bind to (repeatable); none means the address the client reached.',
  }),
  list('external-ip', 'externalIps', {
    arg: 'public[/private]',
    check: checkExternalIp,
    jsonHint: { pattern: '^[0-9A-Fa-f:.]+(/[0-9A-Fa-f:.]+)?$' },
    description:
      'Public address advertised for relays behind 1:1 NAT, optionally /private address (repeatable).',
  }),
  list('allowed-peer-ip', 'allowedPeerIps', {
    arg: 'ip|cidr|a-b',
    check: checkPeerPattern,
    description: 'Peer addresses allowed even when denied (address, CIDR or a-b range; repeatable).',
  }),
  list('denied-peer-ip', 'deniedPeerIps', {
    arg: 'ip|cidr|a-b',
    check: checkPeerPattern,
    description:
      'Peer addresses refused in addition to the built-in list (address, CIDR or a-b range; repeatable).',
  }),
  integer('user-quota', 'userQuota', {
    min: 0,
    max: INT32,
    default: 0,
    description: 'Concurrent allocations per user; 0 means unlimited.',
  }),
  integer('total-quota', 'totalQuota', {
    min: 0,
    max: INT32,
    default: 0,
    description: 'Concurrent allocations in total; 0 means unlimited.',
  }),
  integer('max-allocate-lifetime', 'maxAllocateLifetime', {
    min: 1,
    max: 86400,
    default: 3600,
    arg: 'seconds',
    description: 'Longest allocation lifetime granted, in seconds.',
  }),
  oneOf('allocation-default-address-family', 'allocationDefaultAddressFamily', {
    values: ['ipv4', 'ipv6', 'keep'],
    default: 'ipv4',
    arg: 'family',
    description:
      'Relay address family for an Allocate without REQUESTED-ADDRESS-FAMILY (browsers never send one): ipv4 (the RFC default), ipv6, or keep (the family the client reached the server over). Without a relay address of that family the other one is used.',
  }),
  integer('channel-lifetime', 'channelLifetime', {
    min: 1,
    max: 86400,
    default: 600,
    arg: 'seconds',
    description: 'Channel binding lifetime, in seconds.',
  }),
  integer('permission-lifetime', 'permissionLifetime', {
    min: 1,
    max: 86400,
    default: 300,
    arg: 'seconds',
    description: 'Permission lifetime, in seconds.',
  }),
  integer('stale-nonce', 'staleNonce', {
    min: 1,
    max: 86400,
    default: 600,
    arg: 'seconds',
    description: 'Nonce lifetime in seconds; older nonces get 438 Stale Nonce.',
  }),
  integer('max-permissions', 'maxPermissions', {
    min: 1,
    max: 4096,
    default: 64,
    description: 'Most permissions (peer IP addresses) per allocation; more get 508.',
  }),
  integer('max-channels', 'maxChannels', {
    min: 1,
    max: 4096,
    default: 64,
    description: 'Most channel bindings per allocation; more get 508.',
  }),
  integer('unauthorized-ratelimit-rps', 'unauthorizedRatelimitRps', {
    min: 0,
    max: INT32,
    default: 10,
    arg: 'rate',
    description:
      'Unauthenticated error responses (400, 401, 420, 438) per second to one source IP, with a burst of twice as many; 0 disables the limit.',
  }),
  integer('verified-source-lifetime', 'verifiedSourceLifetime', {
    min: 0,
    max: 86400,
    default: 600,
    arg: 'seconds',
    description:
      'A source IP that sent a request with valid MESSAGE-INTEGRITY (or holds a live allocation) is exempt from unauthorized-ratelimit-rps for this long after its last authenticated request; a spoofed source never authenticates. 0 exempts no one.',
  }),
  integer('max-verified-sources', 'maxVerifiedSources', {
    min: 1,
    max: 10000000,
    default: 65536,
    arg: 'count',
    description:
      'Most source IPs remembered as verified (least recently authenticated evicted first; an evicted IP is rate-limited again until it authenticates).',
  }),
  boolean('rfc5766-channel-numbers', 'rfc5766ChannelNumbers', {
    default: false,
    description:
      'Accept the RFC 5766 channel range 0x4000-0x7FFE in ChannelBind (older clients such as coturn 4.6 turnutils_uclient); RFC 8656 allows only 0x4000-0x4FFF.',
  }),
  boolean('no-sha256', 'noSha256', {
    default: false,
    description: 'Do not offer SHA-256 password algorithms (RFC 8489 PASSWORD-ALGORITHMS) in 401 challenges.',
  }),
  boolean('prometheus', 'prometheus', {
    default: false,
    description: 'Serve Prometheus metrics and health checks over HTTP.',
  }),
  integer('prometheus-port', 'prometheusPort', { ...PORT, default: 9641, description: 'Metrics HTTP port.' }),
  string('prometheus-address', 'prometheusAddress', {
    default: '127.0.0.1',
    arg: 'ip',
    check: checkIp,
    jsonHint: IP_HINT,
    description: 'Metrics HTTP address (an IP address).',
  }),
  string('api-token', 'apiToken', {
    default: undefined,
    arg: 'token',
    secret: true,
    check: checkSecret,
    description:
      'Bearer token for the operator endpoints of the HTTP listener (ICE-server credentials, admin API); unset disables them. Prefer TURNPIKE_API_TOKEN_FILE.',
  }),
  string('public-host', 'publicHost', {
    default: undefined,
    arg: 'host',
    check: checkPublicHost,
    description:
      'Host name or IP address clients reach this server at, used in the ICE-server URLs the HTTP listener hands out; unset means the first external-ip public address, else the first listening-ip, else an address of this host.',
  }),
  boolean('test-page', 'testPage', {
    default: false,
    description:
      'Serve an ICE candidate gathering test page at /test on the HTTP listener (needs api-token, given as ?token=).',
  }),
  list('alternate-server', 'alternateServers', {
    arg: 'ip[:port]',
    check: checkHostPort,
    description:
      'Server that new Allocates are redirected to (300 Try Alternate with ALTERNATE-SERVER) while this one drains after SIGTERM; repeatable, used in turn.',
  }),
  integer('drain-timeout', 'drainTimeout', {
    min: 0,
    max: 86400,
    default: 60,
    arg: 'seconds',
    description:
      'After SIGTERM, how long existing allocations keep relaying (new ones are refused) before the daemon exits; 0 exits at once.',
  }),
  oneOf('log-level', 'logLevel', {
    values: LOG_LEVELS,
    default: 'info',
    arg: 'level',
    description: 'Log level: trace, debug, info, warn, error, fatal or silent.',
  }),
  oneOf('log-format', 'logFormat', {
    values: LOG_FORMATS,
    default: 'auto',
    arg: 'format',
    description:
      'Log format: json (one JSON object per line, for journald and log shippers), pretty (human-readable, via pino-pretty), or auto: pretty when stdout is a terminal, else json.',
  }),
  boolean('no-udp', 'noUdp', { default: false, description: 'Do not listen on UDP.' }),
  boolean('no-tcp', 'noTcp', { default: false, description: 'Do not listen on TCP.' }),
  boolean('no-tls', 'noTls', { default: false, description: 'Do not listen on TLS, even when cert is set.' }),
  boolean('software-attribute', 'softwareAttribute', {
    default: false,
    description: 'Add a SOFTWARE attribute to responses.',
  }),
  integer('max-tcp-connections', 'maxTcpConnections', {
    min: 1,
    max: INT32,
    default: 10000,
    description: 'Most concurrent TCP and TLS client connections.',
  }),
  integer('max-tcp-connections-per-ip', 'maxTcpConnectionsPerIp', {
    min: 0,
    max: INT32,
    default: 256,
    description:
      'Most concurrent unauthenticated TCP and TLS connections (holding no allocation) from one source IP address; a new connection from an address at the cap closes its oldest unauthenticated connection. Connections with an allocation count against user-quota and total-quota instead. 0 means no per-IP cap.',
  }),
  integer('tls-handshake-timeout', 'tlsHandshakeTimeout', {
    min: 1,
    max: 3600,
    default: 10,
    arg: 'seconds',
    description: 'Close a TLS connection whose handshake has not completed after this many seconds.',
  }),
  boolean('proxy-protocol', 'proxyProtocol', {
    default: false,
    description:
      'Expect a PROXY protocol v1 or v2 header (from a load balancer) at the start of every TCP and TLS connection, and use the client address it carries.',
  }),
  integer('tcp-idle-timeout', 'tcpIdleTimeout', {
    min: 1,
    max: 86400,
    default: 30,
    arg: 'seconds',
    description:
      'Close a TCP/TLS connection that holds no allocation after this many seconds without a complete message.',
  }),
  integer('tcp-frame-timeout', 'tcpFrameTimeout', {
    min: 1,
    max: 3600,
    default: 5,
    arg: 'seconds',
    description: 'Close a TCP/TLS connection whose frame stays incomplete this many seconds.',
  }),
  integer('max-frame-bytes', 'maxFrameBytes', {
    min: 24,
    max: 65540,
    default: 65540,
    arg: 'bytes',
    description: 'Largest STUN or ChannelData frame accepted over TCP/TLS, in bytes.',
  }),
  integer('sock-buf-size', 'sockBufSize', {
    min: 0,
    max: INT32,
    default: 0,
    arg: 'bytes',
    description: 'Socket send and receive buffer size in bytes; 0 keeps the OS default.',
  }),
] as const satisfies readonly KeySpec[];

/** Compile-time check: every Config field has a row. */
type MissingFields = Exclude<keyof Config, (typeof KEYS)[number]['field']>;
const everyFieldCovered: [MissingFields] extends [never] ? true : MissingFields = true;
void everyFieldCovered;

const BY_NAME: ReadonlyMap<string, KeySpec> = new Map(KEYS.map((spec) => [spec.name, spec]));

/** The row for a key name, or undefined. */
export function keySpec(name: string): KeySpec | undefined {
  return BY_NAME.get(name);
}

/** All key names, in table order. */
export function keyNames(): string[] {
  return KEYS.map((spec) => spec.name);
}

/** The property a config file may carry to point editors at the schema; ignored otherwise. */
export const SCHEMA_PROPERTY = '$schema';

// ---------------------------------------------------------------------------------------------
// Defaults and validation

type MutableConfig = { -readonly [K in keyof Config]: Config[K] };

/** A fresh, mutable copy of the embedded defaults. */
export function defaults(): Config {
  const out: Record<string, unknown> = {};
  for (const spec of KEYS) out[spec.field] = spec.kind === 'list' ? [...spec.default] : spec.default;
  return out as unknown as Config;
}

/** A value as shown in messages: JSON, cut at 60 characters. */
export function show(value: unknown): string {
  if (value === undefined) return 'undefined';
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  const text = JSON.stringify(value) ?? typeof value;
  return text.length > 60 ? text.slice(0, 57) + '...' : text;
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

function assertNever(value: never): never {
  throw new Error(`unexpected ${String(value)}`);
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
    const spec = BY_NAME.get(name);
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
  if (config.useAuthSecret && config.staticAuthSecrets.length === 0) {
    throw new ConfigError('static-auth-secret', 'at least one secret is required when use-auth-secret is on');
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

// ---------------------------------------------------------------------------------------------
// Derived documents

/**
 * JSON Schema keywords for one key. No array of primitives appears in the output (`anyOf` of `const`
 * rather than `enum`, rather than `type: [..]`): Biome would fold such arrays onto one line, and the
 * committed schema must be both `JSON.stringify(jsonSchema(), null, 2)` and Biome-formatted.
 */
function jsonType(spec: KeySpec): Record<string, unknown> {
  switch (spec.kind) {
    case 'integer':
      return { type: 'integer', minimum: spec.min, maximum: spec.max, default: spec.default };
    case 'boolean':
      return { type: 'boolean', default: spec.default };
    case 'enum':
      return { type: 'string', anyOf: spec.values.map((value) => ({ const: value })), default: spec.default };
    case 'string':
      return spec.default === undefined
        ? { anyOf: [{ type: 'string', minLength: 1, ...spec.jsonHint }, { type: 'null' }], default: null }
        : { type: 'string', minLength: 1, ...spec.jsonHint, default: spec.default };
    case 'list':
      return { type: 'array', items: { type: 'string', ...spec.jsonHint }, default: [...spec.default] };
    default:
      return assertNever(spec);
  }
}

/** JSON Schema (draft 2020-12) of the config file; committed as conf/turnpike.schema.json. */
export function jsonSchema(): Record<string, unknown> {
  const properties: Record<string, unknown> = {
    [SCHEMA_PROPERTY]: { type: 'string', description: 'Path or URL of this schema, for editors; ignored.' },
  };
  for (const spec of KEYS) {
    properties[spec.name] = {
      description: spec.description,
      ...jsonType(spec),
      ...(spec.secret ? { writeOnly: true } : {}),
    };
  }
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    title: 'turnpike configuration',
    description:
      'Configuration file of the turnpike STUN/TURN server. Every key can also be set with the' +
      ' TURNPIKE_<KEY> environment variable (or TURNPIKE_<KEY>_FILE) and the --<key> command-line option.',
    type: 'object',
    additionalProperties: false,
    properties,
  };
}

function markdownType(spec: KeySpec): string {
  switch (spec.kind) {
    case 'integer':
      return `integer ${spec.min}–${spec.max}`;
    case 'boolean':
      return 'boolean';
    case 'enum':
      return spec.values.join(' \\| ');
    case 'string':
      return `string \`${spec.arg}\``;
    case 'list':
      return `list of \`${spec.arg.replace(/\|/g, '\\|')}\` (repeatable)`;
    default:
      return assertNever(spec);
  }
}

function markdownDefault(spec: KeySpec): string {
  if (spec.kind === 'string' && spec.default === undefined) return 'unset';
  return '`' + JSON.stringify(spec.default) + '`';
}

/** The configuration reference as a markdown table (key, type, default, description), for the README. */
export function configReferenceMarkdown(): string {
  const rows = KEYS.map((spec) => {
    const description = spec.description.replace(/\|/g, '\\|') + (spec.secret ? ' Secret.' : '');
    return `| \`${spec.name}\` | ${markdownType(spec)} | ${markdownDefault(spec)} | ${description} |`;
  });
  return ['| Key | Type | Default | Description |', '| --- | --- | --- | --- |', ...rows].join('\n') + '\n';
}
