/**
 * The effective, validated, deep-frozen configuration of a running turnpike daemon.
 *
 * Every field maps to one configuration key; the key is the coturn option name where coturn
 * has the option (`listening-port` ↔ `listeningPort`). The same name is used in the JSON file,
 * on the command line (`--listening-port`) and in the environment (`TURNPIKE_LISTENING_PORT`,
 * or `TURNPIKE_LISTENING_PORT_FILE` to read the value from a file).
 *
 * The object is replaced as a whole on reload, never mutated.
 */
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';

/** `log-format`: `auto` is pretty when stdout is a terminal, else json. */
export type LogFormat = 'auto' | 'json' | 'pretty';
/** Which data plane relays UDP clients' traffic (`data-plane`). */
export type DataPlaneMode = 'auto' | 'native' | 'js';
/** Which payloads the relay carries (`relay-payload-policy`): anything, or WebRTC's only (RFC 7983). */
export type RelayPayloadPolicy = 'any' | 'webrtc';
/** Relay family of an Allocate without REQUESTED-ADDRESS-FAMILY (`allocation-default-address-family`). */
export type DefaultAddressFamily = 'ipv4' | 'ipv6' | 'keep';
/** What the fleet quota check does when Redis cannot answer (`fleet-quota-on-error`). */
export type FleetQuotaOnError = 'allow' | 'deny';

export interface Config {
  /** STUN/TURN port for UDP and TCP (`listening-port`, default 3478). */
  readonly listeningPort: number;
  /** Addresses to listen on (`listening-ip`, repeatable); empty means `0.0.0.0` and `::`. */
  readonly listeningIps: readonly string[];
  /** TLS port (`tls-listening-port`, default 5349). */
  readonly tlsListeningPort: number;
  /** PEM certificate chain file (`cert`). */
  readonly cert: string | undefined;
  /** PEM private key file (`pkey`). */
  readonly pkey: string | undefined;
  /** Long-term credential realm (`realm`, default `turnpike`). */
  readonly realm: string;
  /** Static users (`user`, `name:password` or `name:0x<md5 key>`), repeatable. Secret. */
  readonly users: readonly string[];
  /** Enable TURN REST API credentials (`use-auth-secret`). */
  readonly useAuthSecret: boolean;
  /** TURN REST API shared secrets (`static-auth-secret`, repeatable for rotation). Secret. */
  readonly staticAuthSecrets: readonly string[];
  /** Relay port range (`min-port`/`max-port`, default 49152–65535). */
  readonly minPort: number;
  readonly maxPort: number;
  /** Relay addresses (`relay-ip`, repeatable). */
  readonly relayIps: readonly string[];
  /** `public[/private]` mappings for 1:1 NAT (`external-ip`, repeatable). */
  readonly externalIps: readonly string[];
  /** Peer policy overrides (`allowed-peer-ip`/`denied-peer-ip`: CIDR, single address or `a-b` range). */
  readonly allowedPeerIps: readonly string[];
  readonly deniedPeerIps: readonly string[];
  /** Concurrent allocations per user / in total (`user-quota`, `total-quota`; 0 = unlimited). */
  readonly userQuota: number;
  readonly totalQuota: number;
  /** Lifetimes in seconds (`max-allocate-lifetime` 3600, `channel-lifetime` 600, `permission-lifetime` 300). */
  readonly maxAllocateLifetime: number;
  /**
   * Relay family when an Allocate names none (`allocation-default-address-family`): `ipv4` (RFC 8656
   * §7.2), `ipv6`, or `keep` (the family the client reached the server over).
   */
  readonly allocationDefaultAddressFamily: DefaultAddressFamily;
  readonly channelLifetime: number;
  readonly permissionLifetime: number;
  /** Nonce lifetime in seconds (`stale-nonce`, default 600). */
  readonly staleNonce: number;
  /** Caps per allocation (`max-permissions` 64, `max-channels` 64); beyond them requests get 508. */
  readonly maxPermissions: number;
  readonly maxChannels: number;
  /** `tcp-relay`: RFC 6062 TCP allocations are served (default false). */
  readonly tcpRelay: boolean;
  /** `tcp-relay-max-connections`: peer TCP connections per TCP allocation (default 32). */
  readonly tcpRelayMaxConnections: number;
  /** Unauthenticated error responses per second per source IP (`unauthorized-ratelimit-rps`, 10; 0 = off). */
  readonly unauthorizedRatelimitRps: number;
  /** Seconds a source IP stays exempt from that limit after its last authenticated request (`verified-source-lifetime`, 600; 0 = none). */
  readonly verifiedSourceLifetime: number;
  /** Most source IPs remembered as verified (`max-verified-sources`, 65536; LRU). */
  readonly maxVerifiedSources: number;
  /** Accept RFC 5766 channel numbers 0x4000–0x7FFE, not only RFC 8656's 0x4000–0x4FFF (`rfc5766-channel-numbers`). */
  readonly rfc5766ChannelNumbers: boolean;
  /** `mobility`: RFC 8016 MOBILITY-TICKET (allocations that survive a client's change of address). */
  readonly mobility: boolean;
  /** Do not offer SHA-256 in challenges (`no-sha256`). */
  readonly noSha256: boolean;
  /** Metrics/health/admin HTTP listener (`prometheus`, `prometheus-port` 9641, `prometheus-address` 127.0.0.1). */
  readonly prometheus: boolean;
  readonly prometheusPort: number;
  readonly prometheusAddress: string;
  /** Bearer token for the operator endpoints of the HTTP listener (`api-token`); unset disables them. Secret. */
  readonly apiToken: string | undefined;
  /**
   * Host name or IP address clients use to reach this server (`public-host`), put in the URLs of
   * `/ice-servers`; unset: the first `external-ip` public address, else the first concrete listening
   * address, else an address of this host.
   */
  readonly publicHost: string | undefined;
  /** Serve the ICE candidate test page at `/test` on the HTTP listener (`test-page`, token in `?token=`). */
  readonly testPage: boolean;
  /** `ip[:port]` servers that new Allocates are sent to (300 Try Alternate) while draining (`alternate-server`). */
  readonly alternateServers: readonly string[];
  /** Seconds existing allocations may keep relaying after SIGTERM before the daemon exits (`drain-timeout`). */
  readonly drainTimeout: number;
  /** pino level (`log-level`, default `info`). */
  readonly logLevel: LogLevel;
  /** `log-format`: json, pretty, or auto (pretty on a terminal; default). */
  readonly logFormat: LogFormat;
  /** Disable listeners (`no-udp`, `no-tcp`, `no-tls`). */
  readonly noUdp: boolean;
  readonly noTcp: boolean;
  readonly noTls: boolean;
  /** Add a SOFTWARE attribute to responses (`software-attribute`, default off: keeps responses small). */
  readonly softwareAttribute: boolean;
  /** Stream (TCP/TLS) limits. */
  readonly maxTcpConnections: number; // `max-tcp-connections`, default 10000
  readonly maxTcpConnectionsPerIp: number; // `max-tcp-connections-per-ip`, default 256 (0 = no cap)
  readonly tlsHandshakeTimeout: number; // `tls-handshake-timeout` seconds, default 10
  /** Expect HAProxy PROXY v1/v2 headers on TCP and TLS connections (`proxy-protocol`). */
  readonly proxyProtocol: boolean;
  readonly tcpIdleTimeout: number; // `tcp-idle-timeout` seconds without a complete frame, default 30
  readonly tcpFrameTimeout: number; // `tcp-frame-timeout` seconds a frame may stay incomplete, default 5
  readonly maxFrameBytes: number; // `max-frame-bytes`, default 65540 (ChannelData 4 + 65535 + pad)
  /** Kernel socket buffers in bytes (`sock-buf-size`, 0 = OS default). */
  readonly sockBufSize: number;
  readonly dataPlane: DataPlaneMode;
  /** Native data plane threads; -1: one per CPU; 0: the JavaScript data plane. */
  readonly relayThreads: number;
  readonly noRelaySteering: boolean;
  /** Fleet mode: the shared Redis (`redis-url`, redis:// or rediss://); unset: a lone node. Secret. */
  readonly redisUrl: string | undefined;
  /** Redis password (`redis-password`, best given as TURNPIKE_REDIS_PASSWORD_FILE). Secret. */
  readonly redisPassword: string | undefined;
  /** Prefix of turnpike's own Redis keys (`redis-key-prefix`, default `turnpike`). */
  readonly redisKeyPrefix: string;
  /** Milliseconds a fleet check may wait for Redis (`redis-timeout`, 1000). */
  readonly redisTimeout: number;
  /** Seconds between full reads of the coturn-layout user database (`redis-userdb-poll`, 10). */
  readonly redisUserdbPoll: number;
  /** This node's name in the fleet (`node-id`; default the host name). */
  readonly nodeId: string | undefined;
  /** `ip[:port]` other nodes redirect clients to (`fleet-address`). */
  readonly fleetAddress: string | undefined;
  /** Fleet-wide concurrent allocations per user (`fleet-user-quota`, 0 = none). */
  readonly fleetUserQuota: number;
  /** Seconds a quota lease lives without renewal (`fleet-lease-time`, 30). */
  readonly fleetLeaseTime: number;
  /** `fleet-quota-on-error`: allow (default) or deny when Redis cannot answer. */
  readonly fleetQuotaOnError: FleetQuotaOnError;
  /** Allocations on this node above which new ones are redirected (`fleet-max-allocations`, 0 = none). */
  readonly fleetMaxAllocations: number;
  /** CPU percent above which new allocations are redirected (`fleet-max-cpu`, 0 = none). */
  readonly fleetMaxCpu: number;
  /** /readyz answers 503 while over the load threshold (`fleet-readyz-capacity`). */
  readonly fleetReadyzCapacity: boolean;
  /** /readyz answers 503 while Redis is unreachable (`fleet-readyz-redis`). */
  readonly fleetReadyzRedis: boolean;
  /** Seconds between interim usage records of a live allocation (`fleet-usage-interim`, 300; 0 = none). */
  readonly fleetUsageInterim: number;
  /** Usage records kept while Redis is unreachable (`fleet-usage-buffer`, 100000). */
  readonly fleetUsageBuffer: number;
  /** Approximate length the usage stream is trimmed to (`fleet-usage-stream-max`, 1000000). */
  readonly fleetUsageStreamMax: number;
  /** `relay-payload-policy`: `webrtc` relays only datagrams whose first byte is STUN, DTLS or RTP/RTCP. */
  readonly relayPayloadPolicy: RelayPayloadPolicy;
  /** Bandwidth limits in payload bytes per second, both directions combined; 0 = unlimited. */
  readonly maxBps: number; // `max-bps`: per allocation
  readonly userMaxBps: number; // `user-max-bps`: over all allocations of one user
  readonly bpsCapacity: number; // `bps-capacity`: the whole server
}
