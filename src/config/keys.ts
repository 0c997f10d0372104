/**
 * The configuration table: one row per key (a data table), with the row builders that tie each
 * row's default to the type of its `Config` field. Key names are coturn's option names where
 * coturn has the option. Everything else is derived from this table: defaults and validation
 * (`schema.ts`), the JSON Schema and the README's reference (`reference.ts`), the CLI options.
 */

import {
  checkExternalIp,
  checkHostPort,
  checkIp,
  checkKeyPrefix,
  checkNodeId,
  checkPeerPattern,
  checkPublicHost,
  checkRealm,
  checkRedisUrl,
  checkSecret,
  checkSpecificIp,
  checkUser,
  type ItemCheck,
} from './checks.js';
import type {
  Config,
  DataPlaneMode,
  DefaultAddressFamily,
  FleetQuotaOnError,
  LogFormat,
  LogLevel,
  RelayPayloadPolicy,
} from './types.js';

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

const checkPath: ItemCheck = (item) => (item === '' ? 'must not be empty' : undefined);

const IP_HINT = { anyOf: [{ format: 'ipv4' }, { format: 'ipv6' }] } as const;

/** Row builders: they tie each row's default to the type of its Config field. */
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

function oneOf<
  F extends
    | FieldOf<LogLevel>
    | FieldOf<LogFormat>
    | FieldOf<DefaultAddressFamily>
    | FieldOf<DataPlaneMode>
    | FieldOf<FleetQuotaOnError>
    | FieldOf<RelayPayloadPolicy>,
>(
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
const DATA_PLANES: readonly DataPlaneMode[] = ['auto', 'native', 'js'];
const PAYLOAD_POLICIES: readonly RelayPayloadPolicy[] = ['any', 'webrtc'];
const BYTES_PER_SEC = { min: 0, max: INT32, default: 0, arg: 'bytes/s' } as const;

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
  integer('max-bps', 'maxBps', {
    ...BYTES_PER_SEC,
    description:
      "Bandwidth of one allocation, in payload bytes per second, both directions combined (coturn's unit: bytes, not bits); packets over it are dropped. 0 means unlimited.",
  }),
  integer('user-max-bps', 'userMaxBps', {
    ...BYTES_PER_SEC,
    description:
      'Bandwidth of all the allocations of one user together (REST user id or user name), in payload bytes per second, both directions combined; packets over it are dropped. 0 means unlimited.',
  }),
  integer('bps-capacity', 'bpsCapacity', {
    ...BYTES_PER_SEC,
    description:
      'Bandwidth of the whole server, in payload bytes per second relayed, both directions combined; packets over it are dropped. 0 means unlimited.',
  }),
  oneOf('relay-payload-policy', 'relayPayloadPolicy', {
    values: PAYLOAD_POLICIES,
    default: 'any',
    arg: 'policy',
    description:
      'What the relay carries: any datagram, or webrtc: only datagrams whose first byte is STUN (0-3), DTLS (20-63) or RTP/RTCP (128-191) as RFC 7983 demultiplexes them, both directions; others (QUIC, tunnelled TCP, empty datagrams) are dropped and counted.',
  }),
  boolean('mobility', 'mobility', {
    default: false,
    description:
      'RFC 8016 mobility: an Allocate with an empty MOBILITY-TICKET gets a mobile allocation, and a Refresh carrying its ticket (authenticated with the same credentials, same transport) from a new client address moves the allocation there, the old address then being served no more. Tickets are HMAC-authenticated, good on this server process only, and void once the allocation has moved. Off: such requests get 405 Mobility Forbidden.',
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
  boolean('tcp-relay', 'tcpRelay', {
    default: false,
    description:
      "RFC 6062 TCP allocations: clients on TCP or TLS may ask for a TCP relayed address (REQUESTED-TRANSPORT TCP), open TCP connections to peers (Connect) and accept them from peers that have a permission (ConnectionAttempt). Off by default (coturn's no-tcp-relay is the opposite switch): browsers never use it, and a TCP relay reaches TCP services. Refused (442) while relay-payload-policy is webrtc.",
  }),
  integer('tcp-relay-max-connections', 'tcpRelayMaxConnections', {
    min: 1,
    max: 4096,
    default: 32,
    description:
      'Most peer TCP connections per TCP allocation (connecting, waiting for ConnectionBind, or bound); a Connect beyond it gets 508 and an incoming peer connection beyond it is closed.',
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
    description:
      'Socket send and receive buffer size in bytes; 0 keeps the OS default (the native data plane asks for 4 MiB on listening sockets, capped by net.core.rmem_max/wmem_max).',
  }),
  oneOf('data-plane', 'dataPlane', {
    values: DATA_PLANES,
    default: 'auto',
    arg: 'plane',
    description:
      'What relays UDP clients: native (the C++ addon built at npm ci: worker threads with batched I/O), js (the event loop), or auto: native when the addon is built, else js. TCP and TLS clients always use js. Restart to change.',
  }),
  integer('relay-threads', 'relayThreads', {
    min: -1,
    max: 256,
    default: -1,
    arg: 'n',
    description:
      'Worker threads of the native data plane, each with its own SO_REUSEPORT socket per UDP listening address; -1: one per CPU; 0: the js data plane. Restart to change.',
  }),
  boolean('no-relay-steering', 'noRelaySteering', {
    default: false,
    description:
      "Native data plane: do not steer datagrams. By default a classic BPF program on each UDP listening address's SO_REUSEPORT group sends TURN requests straight to the main thread (the control plane) and each client's other datagrams to one worker thread, chosen from its address and port; with this set, or where the kernel refuses the program, the kernel's hash spreads every datagram over the threads, which hand TURN requests up. Restart to change.",
  }),
  string('redis-url', 'redisUrl', {
    default: undefined,
    arg: 'url',
    secret: true,
    check: checkRedisUrl,
    description:
      "Fleet mode: the Redis shared by every node (redis://host:6379/0, rediss:// for TLS). Users and secrets in coturn's Redis layout, fleet-wide quotas and revocations, the node registry, redirects and usage records. Unset: a lone node.",
  }),
  string('redis-password', 'redisPassword', {
    default: undefined,
    arg: 'password',
    secret: true,
    check: checkSecret,
    description: 'Password for redis-url (AUTH); prefer TURNPIKE_REDIS_PASSWORD_FILE.',
  }),
  string('redis-key-prefix', 'redisKeyPrefix', {
    default: 'turnpike',
    arg: 'prefix',
    check: checkKeyPrefix,
    description:
      "Prefix of turnpike's own Redis keys (leases, revocations, nodes, usage stream); coturn's turn/realm/... keys are read as they are.",
  }),
  integer('redis-timeout', 'redisTimeout', {
    min: 50,
    max: 60000,
    default: 1000,
    arg: 'ms',
    description:
      'Milliseconds an Allocate waits for the fleet quota check before fleet-quota-on-error decides.',
  }),
  integer('redis-userdb-poll', 'redisUserdbPoll', {
    min: 1,
    max: 3600,
    default: 10,
    arg: 'seconds',
    description:
      'Seconds between full reads of the user database in Redis; with keyspace notifications on (notify-keyspace-events K$g or KA), changes apply at once.',
  }),
  string('node-id', 'nodeId', {
    default: undefined,
    arg: 'id',
    check: checkNodeId,
    description: 'Name of this node in the fleet; unset means the host name.',
  }),
  string('fleet-address', 'fleetAddress', {
    default: undefined,
    arg: 'ip[:port]',
    check: checkHostPort,
    description:
      'Address other nodes send clients to (ALTERNATE-SERVER) when they redirect to this node; unset means the first external-ip public address, else the first listening-ip, with listening-port.',
  }),
  integer('fleet-user-quota', 'fleetUserQuota', {
    min: 0,
    max: INT32,
    default: 0,
    description:
      "Concurrent allocations per user (REST userid) across the whole fleet; 0 means none. The realm's user-quota in Redis (coturn layout), when set, takes precedence.",
  }),
  integer('fleet-lease-time', 'fleetLeaseTime', {
    min: 2,
    max: 3600,
    default: 30,
    arg: 'seconds',
    description:
      'Lifetime of a fleet quota lease; the owning node renews it, so the slots of a node that died come back within this time.',
  }),
  oneOf('fleet-quota-on-error', 'fleetQuotaOnError', {
    values: ['allow', 'deny'],
    default: 'allow',
    arg: 'allow|deny',
    description:
      'When Redis cannot answer the fleet quota check: allow the allocation (the local user-quota still applies) or deny it with 508.',
  }),
  integer('fleet-max-allocations', 'fleetMaxAllocations', {
    min: 0,
    max: INT32,
    default: 0,
    description:
      'Allocations on this node from which new Allocates are redirected (300 Try Alternate) to the least-loaded healthy node; 0 means no threshold.',
  }),
  integer('fleet-max-cpu', 'fleetMaxCpu', {
    min: 0,
    max: 100,
    default: 0,
    arg: 'percent',
    description:
      'CPU use of this process (percent of one core, over the last heartbeat) from which new Allocates are redirected; 0 means no threshold.',
  }),
  boolean('fleet-readyz-capacity', 'fleetReadyzCapacity', {
    default: false,
    description: '/readyz answers 503 while this node is over its fleet load threshold.',
  }),
  boolean('fleet-readyz-redis', 'fleetReadyzRedis', {
    default: false,
    description: '/readyz answers 503 while Redis is unreachable.',
  }),
  integer('fleet-usage-interim', 'fleetUsageInterim', {
    min: 0,
    max: 86400,
    default: 300,
    arg: 'seconds',
    description:
      'Seconds between interim usage records of a live allocation (the final record comes when it ends); 0 means none.',
  }),
  integer('fleet-usage-buffer', 'fleetUsageBuffer', {
    min: 1,
    max: 10000000,
    default: 100000,
    arg: 'records',
    description:
      'Usage records kept in memory while Redis is unreachable, written when it is back; beyond this the oldest are dropped, counted and logged.',
  }),
  integer('fleet-usage-stream-max', 'fleetUsageStreamMax', {
    min: 1000,
    max: INT32,
    default: 1000000,
    arg: 'entries',
    description: 'Approximate length the usage stream is trimmed to (XADD MAXLEN ~).',
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

/** For exhaustive switches over `KeySpec['kind']`. */
export function assertNever(value: never): never {
  throw new Error(`unexpected ${String(value)}`);
}
