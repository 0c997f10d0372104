/**
 * HAProxy PROXY protocol v1 (text) and v2 (binary) headers, as sent by a load balancer in front of
 * the TCP and TLS listeners before any client byte. Pure parser: bytes in, result out; never throws.
 * Only used when the operator enables `proxy-protocol`: otherwise a PROXY header is bad input.
 */
import { formatIPv4, formatIPv6, formatIp, parseIp } from './ip.js';

export type ProxyHeaderResult =
  /** More bytes are needed. */
  | { readonly state: 'incomplete' }
  /** Not a valid PROXY header: close the connection. */
  | { readonly state: 'invalid' }
  /**
   * A complete header of `length` bytes. `source` is the original client, or undefined for
   * LOCAL (v2) / UNKNOWN (v1) headers, where the connection's own address stands.
   */
  | {
      readonly state: 'done';
      readonly length: number;
      readonly source: { address: string; port: number } | undefined;
    };

const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V1_PREFIX = Buffer.from('PROXY ', 'latin1');
/** v1 headers are at most 107 bytes (the spec's bound). */
const V1_MAX = 107;
/** v2: 16-byte header plus at most this much address and TLV data. */
const V2_MAX_BODY = 512;

const INCOMPLETE: ProxyHeaderResult = Object.freeze({ state: 'incomplete' });
const INVALID: ProxyHeaderResult = Object.freeze({ state: 'invalid' });

export function parseProxyHeader(buf: Buffer): ProxyHeaderResult {
  if (buf.length === 0) return INCOMPLETE;
  if (buf[0] === 0x0d) return parseV2(buf);
  if (buf[0] === 0x50) return parseV1(buf);
  return INVALID;
}

function startsWith(buf: Buffer, prefix: Buffer): boolean | undefined {
  const n = Math.min(buf.length, prefix.length);
  if (buf.compare(prefix, 0, n, 0, n) !== 0) return false;
  return buf.length >= prefix.length ? true : undefined;
}

function parseV2(buf: Buffer): ProxyHeaderResult {
  const sig = startsWith(buf, V2_SIGNATURE);
  if (sig === false) return INVALID;
  if (sig === undefined || buf.length < 16) return INCOMPLETE;
  const verCmd = buf[12]!;
  if (verCmd >> 4 !== 2) return INVALID;
  const command = verCmd & 0x0f;
  const famProto = buf[13]!;
  const bodyLength = buf.readUInt16BE(14);
  if (bodyLength > V2_MAX_BODY) return INVALID;
  const length = 16 + bodyLength;
  if (buf.length < length) return INCOMPLETE;
  if (command === 0x0) return { state: 'done', length, source: undefined }; // LOCAL: health check
  if (command !== 0x1) return INVALID;
  const family = famProto >> 4;
  const proto = famProto & 0x0f;
  if (proto !== 0x1 && proto !== 0x0) return INVALID; // STREAM (or UNSPEC)
  if (family === 0x1) {
    if (bodyLength < 12) return INVALID;
    return { state: 'done', length, source: { address: formatIPv4(buf, 16), port: buf.readUInt16BE(24) } };
  }
  if (family === 0x2) {
    if (bodyLength < 36) return INVALID;
    return { state: 'done', length, source: { address: formatIPv6(buf, 16), port: buf.readUInt16BE(48) } };
  }
  if (family === 0x0) return { state: 'done', length, source: undefined }; // AF_UNSPEC
  return INVALID;
}

function parseV1(buf: Buffer): ProxyHeaderResult {
  const prefix = startsWith(buf, V1_PREFIX);
  if (prefix === false) return INVALID;
  if (prefix === undefined) return INCOMPLETE;
  const end = buf.indexOf('\r\n', 0, 'latin1');
  if (end < 0) return buf.length >= V1_MAX ? INVALID : INCOMPLETE;
  if (end + 2 > V1_MAX) return INVALID;
  const parts = buf.toString('latin1', 6, end).split(' ');
  if (parts[0] === 'UNKNOWN') return { state: 'done', length: end + 2, source: undefined };
  if (parts.length !== 5) return INVALID;
  const [proto, src, , sport] = parts as [string, string, string, string, string];
  const port = Number(sport);
  if (!/^\d{1,5}$/.test(sport) || port > 65535) return INVALID;
  const ip = parseIp(src);
  if (ip === undefined || (proto === 'TCP4' ? ip.length !== 4 : proto === 'TCP6' ? ip.length !== 16 : true))
    return INVALID;
  return { state: 'done', length: end + 2, source: { address: formatIp(ip), port } };
}
