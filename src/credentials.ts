/**
 * ICE-server credentials for WebRTC applications, and the operator's revocation list.
 *
 * `iceServers()` builds what `GET /ice-servers` and `turnpike credentials` hand out: an
 * `RTCConfiguration`-shaped object (`new RTCPeerConnection(result)` works as is) with a `stun:` URL
 * and the enabled `turn:`/`turns:` URLs of this server, and TURN REST API credentials
 * (draft-uberti-behave-turn-rest-00): `username = "<expiry>:<userid>"`,
 * `credential = base64(HMAC-SHA1(first static-auth-secret, username))`. The secret never leaves the
 * server; a leaked credential is good until its expiry, or until the operator revokes its user id.
 *
 * URL order follows what browsers do with it (they try every URL): UDP first, TCP next, TLS last
 * (RFC 7064/7065 URIs; IPv6 literals in brackets).
 */
import type { Config } from './config/types.js';
import { restPassword } from './core/auth/rest-secret.js';
import { ipVersion } from './core/ip.js';
import { hostAddresses } from './io/host-addresses.js';

export { hostAddresses };

/** ttl bounds of issued credentials, in seconds. */
export const MIN_TTL_SEC = 60;
export const MAX_TTL_SEC = 86400;
export const DEFAULT_TTL_SEC = 3600;
/** Longest user id accepted; with the expiry and ':' the username stays far below 509 bytes. */
export const MAX_USERID_LENGTH = 64;

/** User ids: letters, digits and a few URL-safe marks; never ':' (the REST separator). */
const USERID = /^[A-Za-z0-9._~@+=-]+$/;

/** One entry of `RTCConfiguration.iceServers`. */
export interface IceServer {
  readonly urls: readonly string[];
  readonly username?: string;
  readonly credential?: string;
}

/** `RTCConfiguration`-shaped answer, plus the credential's lifetime. */
export interface IceConfiguration {
  readonly iceServers: readonly IceServer[];
  /** Seconds the credential is valid for, from issue. */
  readonly ttl: number;
  /** Unix seconds after which the server refuses the credential (the username's first field). */
  readonly expiresAt: number;
}

export type Transport = 'udp' | 'tcp' | 'tls';

/** A refusal of a credentials request: an HTTP status with a message for the operator. */
export interface CredentialRefusal {
  readonly ok: false;
  readonly status: 400 | 409;
  readonly error: string;
}

export type CredentialResult = { readonly ok: true; readonly value: IceConfiguration } | CredentialRefusal;

export interface CredentialRequest {
  /** The application's user id (required; no ':'; at most 64 characters). */
  readonly userid: string | undefined;
  /** Requested lifetime (text as given, or a number); default 3600; outside 60-86400 it is refused. */
  readonly ttl: string | number | undefined;
  /**
   * An optional tag for the application's own accounting (a room, a session), put in the username
   * after '#' (`<expiry>:<userid>#<tag>`): usage records carry it; quotas and revocations ignore it.
   */
  readonly tag?: string | undefined;
  /** Only these transports (comma-separated text or a list); default every enabled one. */
  readonly transports?: string | readonly string[] | undefined;
  readonly nowSec: number;
}

/** Why `userid` is unusable, or undefined when it is fine. */
export function checkUserId(userid: string | undefined): string | undefined {
  if (userid === undefined || userid === '') return 'userid is required';
  if (userid.length > MAX_USERID_LENGTH) return `userid must be at most ${MAX_USERID_LENGTH} characters`;
  if (!USERID.test(userid)) return 'userid may contain only letters, digits and . _ ~ @ + = -';
  return undefined;
}

/**
 * The lifetime to issue for `ttl` (undefined or empty: the default), or an error text when it is not
 * a whole number of seconds within [MIN_TTL_SEC, MAX_TTL_SEC]. Never adjusted silently: a caller
 * asking for 10 s must not get a credential that lives 60.
 */
export function parseTtl(ttl: string | number | undefined): number | string {
  if (ttl === undefined || ttl === '') return DEFAULT_TTL_SEC;
  const n = typeof ttl === 'number' ? ttl : /^\d{1,9}$/.test(ttl) ? Number(ttl) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < 0) return 'ttl must be a whole number of seconds';
  if (n < MIN_TTL_SEC || n > MAX_TTL_SEC) {
    return `ttl must be ${MIN_TTL_SEC}-${MAX_TTL_SEC} seconds, got ${n}`;
  }
  return n;
}

/** The transports the configuration serves, in the order URLs are listed. */
export function enabledTransports(config: Config): Transport[] {
  const out: Transport[] = [];
  if (!config.noUdp) out.push('udp');
  if (!config.noTcp) out.push('tcp');
  if (!config.noTls && config.cert !== undefined && config.pkey !== undefined) out.push('tls');
  return out;
}

const isWildcard = (ip: string): boolean => ip === '0.0.0.0' || ip === '::';

/**
 * The host clients reach this server at: `public-host`; else the first `external-ip` public address;
 * else the first concrete `listening-ip`; else the first address of this host (`host` lists them),
 * else 127.0.0.1.
 */
export function publicHost(config: Config, host: () => readonly string[] = hostAddresses): string {
  if (config.publicHost !== undefined) return config.publicHost;
  const external = config.externalIps[0]?.split('/')[0];
  if (external !== undefined && external !== '') return external;
  const listening = config.listeningIps.find((a) => !isWildcard(a));
  if (listening !== undefined) return listening;
  return host()[0] ?? '127.0.0.1';
}

/** `host:port` for a URI: IPv6 literals in brackets (RFC 3986 §3.2.2). */
export function hostPort(host: string, port: number): string {
  return ipVersion(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

function parseTransports(value: string | readonly string[] | undefined): Set<Transport> | string {
  if (value === undefined || value === '') return new Set(['udp', 'tcp', 'tls']);
  const items = typeof value === 'string' ? value.split(',') : [...value];
  const out = new Set<Transport>();
  for (const raw of items) {
    const item = raw.trim().toLowerCase();
    if (item === 'udp' || item === 'tcp' || item === 'tls') out.add(item);
    else return 'transport must be a comma-separated list of udp, tcp and tls';
  }
  return out;
}

/**
 * The ICE servers and REST credential for one request. Refuses (409) when the server does not
 * accept REST credentials (use-auth-secret off, or no secret), and (400) on bad input.
 */
export function iceServers(
  config: Config,
  request: CredentialRequest,
  host: () => readonly string[] = hostAddresses,
): CredentialResult {
  const secret = config.staticAuthSecrets[0];
  if (!config.useAuthSecret || secret === undefined) {
    return {
      ok: false,
      status: 409,
      error: 'TURN REST credentials are off: set use-auth-secret and static-auth-secret',
    };
  }
  const bad = checkUserId(request.userid);
  if (bad !== undefined) return { ok: false, status: 400, error: bad };
  const tag = request.tag ?? '';
  if (tag !== '' && (tag.length > MAX_USERID_LENGTH || !USERID.test(tag)))
    return {
      ok: false,
      status: 400,
      error: `tag must be at most ${MAX_USERID_LENGTH} letters, digits or . _ ~ @ + = -`,
    };
  const ttl = parseTtl(request.ttl);
  if (typeof ttl === 'string') return { ok: false, status: 400, error: ttl };
  const wanted = parseTransports(request.transports);
  if (typeof wanted === 'string') return { ok: false, status: 400, error: wanted };
  const transports = enabledTransports(config).filter((t) => wanted.has(t));
  if (transports.length === 0) {
    return { ok: false, status: 409, error: 'none of the requested transports is enabled on this server' };
  }

  const name = publicHost(config, host);
  const plain = hostPort(name, config.listeningPort);
  const expiresAt = request.nowSec + ttl;
  const username = `${expiresAt}:${request.userid}${tag === '' ? '' : `#${tag}`}`;
  const urls = transports.map((t) =>
    t === 'tls'
      ? `turns:${hostPort(name, config.tlsListeningPort)}?transport=tcp`
      : `turn:${plain}?transport=${t}`,
  );
  const servers: IceServer[] = [];
  // STUN (Binding) is answered over UDP only by browsers' ICE agents: list it when UDP is on.
  if (transports.includes('udp')) servers.push({ urls: [`stun:${plain}`] });
  servers.push({ urls, username, credential: restPassword(secret, username) });
  return { ok: true, value: { iceServers: servers, ttl, expiresAt } };
}

/**
 * The answer of the TURN REST API draft (draft-uberti-behave-turn-rest-00 §2.2): the credential and
 * its TURN URIs, for clients written against that draft rather than against RTCConfiguration.
 */
export interface RestApiAnswer {
  readonly username: string;
  readonly password: string;
  /** Seconds the credential is valid for, from issue. */
  readonly ttl: number;
  /** The `turn:` and `turns:` URIs the credential is good for (STUN needs none). */
  readonly uris: readonly string[];
}

/** `value` (an `iceServers()` answer) in the draft's shape: same credential, same TURN URLs. */
export function restApiAnswer(value: IceConfiguration): RestApiAnswer {
  const turn = value.iceServers.find((s) => s.username !== undefined && s.credential !== undefined);
  if (turn?.username === undefined || turn.credential === undefined) {
    throw new Error('an ICE configuration without a TURN credential');
  }
  return { username: turn.username, password: turn.credential, ttl: value.ttl, uris: [...turn.urls] };
}

/** `format` of GET /ice-servers: an RTCConfiguration (the default) or the TURN REST API draft's answer. */
export type CredentialFormat = 'rtc' | 'rest';

/** The format asked for (absent or empty: `rtc`), or why it is refused. */
export function parseCredentialFormat(
  format: string | null | undefined,
): { readonly ok: true; readonly format: CredentialFormat } | { readonly ok: false; readonly error: string } {
  if (format === undefined || format === null || format === '' || format === 'rtc') {
    return { ok: true, format: 'rtc' };
  }
  if (format === 'rest') return { ok: true, format: 'rest' };
  return {
    ok: false,
    error: 'format must be rtc (an RTCConfiguration, the default) or rest (the TURN REST API draft answer)',
  };
}

/**
 * REST user ids the operator revoked before their credentials expire, each until a time. Bounded:
 * expired entries are pruned as new ones come; a full list of live entries refuses more.
 */
export class RevocationList {
  private readonly until = new Map<string, number>();
  readonly maxEntries: number;

  constructor(maxEntries = 10_000) {
    this.maxEntries = maxEntries;
  }

  get size(): number {
    return this.until.size;
  }

  /** Revokes `userId` until `untilSec` (extends, never shortens, an existing entry). False when full. */
  revoke(userId: string, untilSec: number, nowSec: number): boolean {
    const existing = this.until.get(userId);
    if (existing !== undefined) {
      this.until.set(userId, Math.max(existing, untilSec));
      return true;
    }
    if (this.until.size >= this.maxEntries) this.prune(nowSec);
    if (this.until.size >= this.maxEntries) return false;
    this.until.set(userId, untilSec);
    return true;
  }

  /** Lifts a revocation; true when there was one. */
  lift(userId: string): boolean {
    return this.until.delete(userId);
  }

  /** The authenticator's check: revoked while `nowSec` is before the entry's end. */
  isRevoked(userId: string, nowSec: number): boolean {
    if (this.until.size === 0) return false;
    const end = this.until.get(userId);
    return end !== undefined && nowSec < end;
  }

  /** Drops entries that have ended. */
  prune(nowSec: number): void {
    for (const [id, end] of this.until) if (end <= nowSec) this.until.delete(id);
  }

  /** Live entries, soonest end first. */
  list(nowSec: number): Array<{ userid: string; until: number }> {
    this.prune(nowSec);
    return [...this.until]
      .map(([userid, until]) => ({ userid, until }))
      .sort((a, b) => a.until - b.until || (a.userid < b.userid ? -1 : 1));
  }
}
