/**
 * What becomes of each coturn option (coturn 4.6's `turnserver --help` and its example
 * turnserver.conf): copied to the turnpike key of the same meaning, handled by a rule of its own in
 * `translate.ts`, accepted with nothing to set (turnpike behaves so already), or not imported, with
 * the reason. An option missing from this table is refused: a typo in a security setting must not
 * vanish silently.
 */

export type Rule =
  /** The value (or flag) goes to the turnpike key `key`; `differs` says what turnpike does otherwise. */
  | { readonly kind: 'key'; readonly key: string; readonly differs?: string }
  /** Handled by name in `translate.ts` (the value changes shape, or other keys depend on it). */
  | { readonly kind: 'special' }
  /** Nothing to set: turnpike behaves so already, or the option is about coturn's own process. */
  | { readonly kind: 'accepted'; readonly why: string }
  /** No equivalent in turnpike; not imported. `weaker`: the coturn option tightened security. */
  | { readonly kind: 'unsupported'; readonly why: string; readonly weaker?: boolean };

const same = (key: string, differs?: string): Rule =>
  differs === undefined ? { kind: 'key', key } : { kind: 'key', key, differs };
const accepted = (why: string): Rule => ({ kind: 'accepted', why });
const unsupported = (why: string, weaker = false): Rule => ({ kind: 'unsupported', why, weaker });
const special: Rule = { kind: 'special' };

const LOGS =
  'turnpike logs JSON lines to stdout, which journald (or any log shipper) collects; see log-level and log-format';
const PROCESS = 'systemd runs turnpike (conf/turnpike.service: DynamicUser, Type=notify)';
const NO_DB =
  'turnpike reads no user database: export the users (turnadmin -l) as user lines, or one name:password per line in a file named by TURNPIKE_USER_FILE';
const CLI =
  "turnpike has no telnet admin console; its HTTP operator API (api-token: /admin/allocations, /admin/disconnect, /admin/drain) and 'turnpike probe' take its place";
const WEB_ADMIN = 'turnpike has no web admin pages; the HTTP operator API (api-token) takes their place';
const TLS_DEFAULTS =
  "turnpike uses Node's TLS defaults (TLS 1.2 and 1.3, OpenSSL's default ciphers and curves)";
const ONE_PROCESS =
  'turnpike runs one event loop per process; run several instances behind a load balancer (proxy-protocol) for more cores';
const RFC5780 =
  'turnpike does not implement NAT behaviour discovery (RFC 5780), so this is how it behaves anyway';

export const RULES: Readonly<Record<string, Rule>> = {
  // Listeners
  'listening-port': same('listening-port'),
  'tls-listening-port': same('tls-listening-port'),
  'listening-ip': same('listening-ip'),
  'relay-ip': same('relay-ip'),
  'external-ip': same('external-ip'),
  'min-port': same('min-port'),
  'max-port': same('max-port'),
  'no-udp': same('no-udp'),
  'no-tcp': same('no-tcp'),
  'no-tls': same('no-tls'),
  'listening-device': unsupported(
    'turnpike does not bind to a network device: give the addresses of that device as listening-ip',
  ),
  'relay-device': unsupported(
    'turnpike does not bind to a network device: give the addresses of that device as relay-ip',
  ),
  'alt-listening-port': unsupported(
    'the alternative port serves RFC 5780 NAT behaviour discovery, which turnpike does not implement',
  ),
  'alt-tls-listening-port': unsupported(
    'the alternative port serves RFC 5780 NAT behaviour discovery, which turnpike does not implement',
  ),
  'tcp-proxy-port': unsupported(
    'turnpike reads PROXY protocol headers on its own TCP/TLS ports instead: set proxy-protocol',
  ),
  'aux-server': unsupported('turnpike serves only the listening-ip and listening-port listeners'),
  'udp-self-balance': unsupported(ONE_PROCESS),
  'relay-threads': same(
    'relay-threads',
    "coturn's 0 relays in its listener thread; turnpike's 0 relays in JavaScript on the main thread (data-plane js)",
  ),
  'no-udp-relay': special,
  'no-tcp-relay': special,
  'no-dtls': accepted('turnpike has no DTLS listener'),
  no_dtls: accepted('turnpike has no DTLS listener'),
  'server-relay': unsupported('turnpike has no in-process server applications to relay for'),
  'max-allocate-timeout': unsupported(
    'the timeout concerns RFC 6062 TCP relay connections, which turnpike does not make',
  ),
  // Authentication
  'lt-cred-mech': accepted('turnpike always uses the long-term credential mechanism for TURN'),
  'no-auth': special,
  user: same('user'),
  realm: same('realm'),
  'use-auth-secret': same('use-auth-secret'),
  'static-auth-secret': same('static-auth-secret'),
  'rest-api-separator': special,
  'server-name': accepted('turnpike needs no server name: the realm is what clients see'),
  oauth: unsupported(
    'turnpike does not implement third-party authorization (RFC 7635 OAuth); clients need long-term or TURN REST credentials',
  ),
  'secret-key-file': unsupported(
    'the key encrypts OAuth keys in a user database, which turnpike does not use',
  ),
  userdb: unsupported(NO_DB),
  db: unsupported(NO_DB),
  'psql-userdb': unsupported(NO_DB),
  'sql-userdb': unsupported(NO_DB),
  'mysql-userdb': unsupported(NO_DB),
  'mongo-userdb': unsupported(NO_DB),
  'redis-userdb': unsupported(NO_DB),
  'redis-statsdb': unsupported('turnpike exposes its statistics as Prometheus metrics (prometheus)'),
  'no-dynamic-realms': accepted('turnpike has one realm and no database to read others from'),
  'no-dynamic-ip-list': accepted('turnpike reads its peer lists from the configuration only'),
  'check-origin-consistency': unsupported('turnpike does not check the ORIGIN attribute', true),
  'no-auth-pings': accepted('turnpike has no database connections to keep alive'),
  // Quotas and limits
  'user-quota': same('user-quota'),
  'total-quota': same('total-quota'),
  'max-bps': special,
  'bps-capacity': special,
  'stale-nonce': special,
  'max-allocate-lifetime': same('max-allocate-lifetime'),
  'channel-lifetime': same('channel-lifetime'),
  'permission-lifetime': same('permission-lifetime'),
  // Peer policy
  'allowed-peer-ip': same(
    'allowed-peer-ip',
    'these lines matter more in turnpike: they are the only way to reach a peer in a private, loopback or other special-purpose range, all denied by default',
  ),
  'denied-peer-ip': special,
  'allow-loopback-peers': special,
  'no-loopback-peers': accepted('turnpike denies loopback peers unless allowed-peer-ip opens them'),
  'no-multicast-peers': special,
  // TLS
  cert: same('cert'),
  pkey: same('pkey'),
  'pkey-pwd': unsupported(
    'turnpike reads an unencrypted PEM private key only: decrypt it (openssl pkey -in key.pem -out plain.pem) and keep it 0600',
  ),
  'cipher-list': unsupported(TLS_DEFAULTS),
  'ec-curve-name': unsupported(TLS_DEFAULTS),
  'dh-file': unsupported(TLS_DEFAULTS),
  dh566: unsupported(TLS_DEFAULTS),
  dh1066: unsupported(TLS_DEFAULTS),
  'CA-file': unsupported('turnpike does not ask clients for certificates'),
  'no-tlsv1': accepted('turnpike never accepts TLS 1.0'),
  'no-tlsv1_1': accepted('turnpike never accepts TLS 1.1'),
  'no-tlsv1_2': unsupported('turnpike accepts TLS 1.2 as well as TLS 1.3', true),
  'tls-alternate-server': unsupported(
    'turnpike redirects with alternate-server only, whatever transport the client used',
  ),
  // STUN behaviour
  'stun-only': special,
  'no-stun': unsupported('turnpike always answers STUN Binding requests'),
  'secure-stun': unsupported(
    'turnpike answers Binding requests without authentication, as RFC 8489 does',
    true,
  ),
  'no-rfc5780': accepted(RFC5780),
  'response-origin-only-with-rfc5780': accepted(RFC5780),
  'no-stun-backward-compatibility': accepted('turnpike does not answer RFC 3489 (classic STUN) requests'),
  'no-software-attribute': accepted('turnpike sends no SOFTWARE attribute unless software-attribute is set'),
  fingerprint: accepted('turnpike adds FINGERPRINT to a response whenever the request carried one'),
  mobility: same('mobility'),
  'keep-address-family': special,
  'allocation-default-address-family': same('allocation-default-address-family'),
  'alternate-server': same(
    'alternate-server',
    'turnpike redirects new Allocates to alternate-server only while it drains (after SIGTERM or POST /admin/drain), not all the time as coturn does for load balancing',
  ),
  // Metrics
  prometheus: same(
    'prometheus',
    "turnpike serves /metrics on 127.0.0.1 only unless prometheus-address says otherwise, and its metric names differ from coturn's (conf/grafana/turnpike.json)",
  ),
  'prometheus-port': same('prometheus-port'),
  'prometheus-username-labels': unsupported('turnpike never puts user names in metric labels'),
  // Logging and process
  verbose: accepted('turnpike logs at info by default'),
  Verbose: special,
  'no-stdout-log': accepted(LOGS),
  'log-file': accepted(LOGS),
  syslog: accepted(LOGS),
  'syslog-facility': accepted(LOGS),
  'simple-log': accepted(LOGS),
  'new-log-timestamp': accepted(LOGS),
  'new-log-timestamp-format': accepted(LOGS),
  'log-binding': accepted(`${LOGS}; Binding requests are never logged one by one`),
  daemon: accepted(PROCESS),
  pidfile: accepted(PROCESS),
  'proc-user': accepted(PROCESS),
  'proc-group': accepted(PROCESS),
  prod: accepted('turnpike never sends a SOFTWARE attribute by default'),
  ne: accepted(`${TLS_DEFAULTS}: no OpenSSL engine is chosen`),
  // Administration
  'no-cli': accepted('turnpike has no telnet admin console'),
  'cli-ip': unsupported(CLI),
  'cli-port': unsupported(CLI),
  'cli-password': unsupported(CLI),
  'cli-max-output-sessions': unsupported(CLI),
  'web-admin': unsupported(WEB_ADMIN),
  'web-admin-ip': unsupported(WEB_ADMIN),
  'web-admin-port': unsupported(WEB_ADMIN),
  'web-admin-listen-on-workers': unsupported(WEB_ADMIN),
  'acme-redirect': unsupported(
    'turnpike serves no HTTP on its TURN ports; renew certificates elsewhere (it reloads them when the files change)',
  ),
};
