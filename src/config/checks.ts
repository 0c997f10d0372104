/**
 * Checks of single configuration values (one item of a list, or a string): each returns what is
 * wrong, in words for the operator, or undefined when the value is fine.
 */
import { Buffer } from 'node:buffer';
import { isIP } from 'node:net';
import { parseIp } from '../core/ip.js';

/** Returns a description of what is wrong with one string item, or undefined when it is fine. */
export type ItemCheck = (item: string) => string | undefined;

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

/** A value as shown in messages: JSON, cut at 60 characters. */
export function show(value: unknown): string {
  if (value === undefined) return 'undefined';
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  const text = JSON.stringify(value) ?? typeof value;
  return text.length > 60 ? text.slice(0, 57) + '...' : text;
}

/** A Redis URL: `redis://` or `rediss://` (TLS), with a host; user and password are optional. */
export const checkRedisUrl: ItemCheck = (item) => {
  let url: URL;
  try {
    url = new URL(item);
  } catch {
    return 'must be a redis:// or rediss:// URL';
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') return 'must be a redis:// or rediss:// URL';
  if (url.hostname === '') return 'must name a host (redis://host:6379)';
  const db = url.pathname.replace(/^\//, '');
  if (db !== '' && !/^\d{1,2}$/.test(db)) return 'the path must be a database number (redis://host:6379/2)';
  return undefined;
};

/** A node id: 1-64 letters, digits, dots, dashes or underscores (it is part of Redis keys). */
export const checkNodeId: ItemCheck = (item) =>
  /^[A-Za-z0-9._-]{1,64}$/.test(item) ? undefined : 'must be 1-64 letters, digits, ".", "_" or "-"';

/** A Redis key prefix: printable, no spaces, at most 64 characters. */
export const checkKeyPrefix: ItemCheck = (item) =>
  /^[!-~]{1,64}$/.test(item) ? undefined : 'must be 1-64 printable characters without spaces';
