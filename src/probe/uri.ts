/**
 * STUN and TURN URIs (RFC 7064, RFC 7065) as the probe takes them:
 *
 *   stun:host[:port]            turn:host[:port][?transport=udp|tcp]
 *   stuns:host[:port]           turns:host[:port][?transport=tcp]
 *
 * Host: an IPv4 address, an IPv6 address in brackets, or a DNS name. Default ports 3478 (plain)
 * and 5349 (TLS). `turn:` defaults to UDP; `turns:`/`stuns:` are TLS over TCP.
 */
import { ipVersion } from '../core/ip.js';

export type ProbeTransport = 'udp' | 'tcp' | 'tls';

export interface ServerUri {
  readonly scheme: 'stun' | 'stuns' | 'turn' | 'turns';
  /** Host name or IP literal (without brackets). */
  readonly host: string;
  readonly port: number;
  readonly transport: ProbeTransport;
  /** TURN (Allocate and relay) or STUN only (Binding). */
  readonly turn: boolean;
}

export type UriResult =
  | { readonly ok: true; readonly uri: ServerUri }
  | { readonly ok: false; readonly error: string };

const HOST_NAME = /^(?!-)[A-Za-z0-9-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?$/;

export function parseServerUri(text: string): UriResult {
  const bad = (why: string): UriResult => ({
    ok: false,
    error: `${JSON.stringify(text)} is not a STUN/TURN URI (${why}); expected e.g. turn:turn.example.org:3478?transport=udp`,
  });
  const m = /^(stuns?|turns?):([^?]*)(?:\?(.*))?$/i.exec(text.trim());
  if (m === null) return bad('it must start with stun:, stuns:, turn: or turns:');
  const scheme = m[1]!.toLowerCase() as ServerUri['scheme'];
  const authority = m[2]!;
  const query = m[3];
  const secure = scheme === 'stuns' || scheme === 'turns';

  let host: string;
  let portText: string | undefined;
  const v6 = /^\[([^\]]+)\](?::(\d+))?$/.exec(authority);
  if (v6 !== null) {
    host = v6[1]!;
    portText = v6[2];
    if (ipVersion(host) !== 6) return bad('the address in brackets is not IPv6');
  } else {
    const parts = authority.split(':');
    if (parts.length > 2) return bad('IPv6 addresses go in brackets');
    host = parts[0]!;
    portText = parts[1];
    if (portText === '') return bad('empty port');
    if (host === '' || (ipVersion(host) === 0 && !HOST_NAME.test(host))) return bad('bad host');
  }
  let port = secure ? 5349 : 3478;
  if (portText !== undefined) {
    if (!/^\d{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535)
      return bad('bad port');
    port = Number(portText);
  }

  let transport: ProbeTransport = secure ? 'tls' : 'udp';
  if (query !== undefined && query !== '') {
    const t = /^transport=(udp|tcp)$/i.exec(query);
    if (t === null) return bad('the only query is ?transport=udp or ?transport=tcp');
    const wanted = t[1]!.toLowerCase();
    if (secure) {
      if (wanted !== 'tcp') return bad(`${scheme}: runs over TCP (TLS); DTLS is not supported`);
    } else {
      transport = wanted as 'udp' | 'tcp';
    }
  }
  if (!scheme.startsWith('turn') && query !== undefined) return bad('stun: URIs take no ?transport=');
  return { ok: true, uri: { scheme, host, port, transport, turn: scheme.startsWith('turn') } };
}

/** The URI back as text (canonical form). */
export function formatServerUri(u: ServerUri): string {
  const host = ipVersion(u.host) === 6 ? `[${u.host}]` : u.host;
  const query = u.turn ? `?transport=${u.transport === 'udp' ? 'udp' : 'tcp'}` : '';
  return `${u.scheme}:${host}:${u.port}${query}`;
}
