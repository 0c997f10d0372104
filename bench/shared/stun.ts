/**
 * The few bytes of STUN (RFC 8489) the benchmarks need, written by hand so they do not depend on the
 * daemon's codec in `src/`: build a Binding request (bench/binding's load generator, the readiness probe),
 * read a message's type and transaction ID, and decode XOR-MAPPED-ADDRESS for the readiness probe.
 *
 * Header layout (RFC 8489 §5), 20 bytes, big-endian:
 * ```
 *  0                   1                   2                   3
 *  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |0 0|     STUN Message Type     |         Message Length        |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                         Magic Cookie                          |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * |                     Transaction ID (96 bits)                  |
 * +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
 * ```
 */
import { crc32 } from 'node:zlib';

export const HEADER_BYTES = 20;
export const MAGIC_COOKIE = 0x2112a442;
/** Binding request: method 0x001, class request. */
export const BINDING_REQUEST = 0x0001;
/** Binding success response: method 0x001, class success (C1=1, C0=0 → 0x0100). */
export const BINDING_SUCCESS = 0x0101;
/** Binding error response: method 0x001, class error (C1=1, C0=1 → 0x0110). */
export const BINDING_ERROR = 0x0111;

const ATTR_XOR_MAPPED_ADDRESS = 0x0020;
const ATTR_FINGERPRINT = 0x8028;
/** RFC 8489 §14.7: the CRC-32 is XORed with the ASCII of "STUN". */
const FINGERPRINT_XOR = 0x5354554e;
const FINGERPRINT_ATTR_BYTES = 8;

/** Size of the Binding request the benchmark sends: the bare header, plus FINGERPRINT when asked for. */
export function bindingRequestBytes(withFingerprint: boolean): number {
  return withFingerprint ? HEADER_BYTES + FINGERPRINT_ATTR_BYTES : HEADER_BYTES;
}

/**
 * Writes a Binding request into `out` (which must hold `bindingRequestBytes(withFingerprint)` bytes) with
 * the transaction ID given as three 32-bit words, and returns the number of bytes written.
 */
export function writeBindingRequest(
  out: Buffer,
  tx0: number,
  tx1: number,
  tx2: number,
  withFingerprint: boolean,
): number {
  out.writeUInt16BE(BINDING_REQUEST, 0);
  out.writeUInt16BE(withFingerprint ? FINGERPRINT_ATTR_BYTES : 0, 2);
  out.writeUInt32BE(MAGIC_COOKIE, 4);
  out.writeInt32BE(tx0, 8);
  out.writeInt32BE(tx1, 12);
  out.writeInt32BE(tx2, 16);
  if (!withFingerprint) return HEADER_BYTES;
  // RFC 8489 §14.7: CRC-32 over the message up to (not including) the FINGERPRINT attribute, with the
  // header length already counting the attribute.
  out.writeUInt16BE(ATTR_FINGERPRINT, 20);
  out.writeUInt16BE(4, 22);
  out.writeUInt32BE((crc32(out.subarray(0, HEADER_BYTES)) ^ FINGERPRINT_XOR) >>> 0, 24);
  return HEADER_BYTES + FINGERPRINT_ATTR_BYTES;
}

/** True when `msg` has a STUN header: top two bits zero, the magic cookie, a 4-aligned length that fits. */
export function isStunHeader(msg: Buffer): boolean {
  if (msg.length < HEADER_BYTES) return false;
  if ((msg.readUInt8(0) & 0xc0) !== 0) return false;
  const length = msg.readUInt16BE(2);
  return (length & 3) === 0 && HEADER_BYTES + length <= msg.length && msg.readUInt32BE(4) === MAGIC_COOKIE;
}

/** A transport address decoded from XOR-MAPPED-ADDRESS. */
export interface MappedAddress {
  readonly family: 'IPv4' | 'IPv6';
  readonly address: string;
  readonly port: number;
}

/**
 * Decodes the first XOR-MAPPED-ADDRESS (RFC 8489 §14.2) of a STUN message, or returns undefined when there
 * is none or it is malformed. Used only by the readiness probe, never on the measured path.
 */
export function readXorMappedAddress(msg: Buffer): MappedAddress | undefined {
  if (!isStunHeader(msg)) return undefined;
  const end = HEADER_BYTES + msg.readUInt16BE(2);
  let offset = HEADER_BYTES;
  while (offset + 4 <= end) {
    const type = msg.readUInt16BE(offset);
    const length = msg.readUInt16BE(offset + 2);
    const value = offset + 4;
    if (value + length > end) return undefined;
    if (type === ATTR_XOR_MAPPED_ADDRESS) return decodeXorAddress(msg, value, length);
    offset = value + ((length + 3) & ~3);
  }
  return undefined;
}

function decodeXorAddress(msg: Buffer, value: number, length: number): MappedAddress | undefined {
  if (length < 8) return undefined;
  const family = msg.readUInt8(value + 1);
  const port = msg.readUInt16BE(value + 2) ^ (MAGIC_COOKIE >>> 16);
  if (family === 0x01 && length === 8) {
    const ip = (msg.readUInt32BE(value + 4) ^ MAGIC_COOKIE) >>> 0;
    const address = `${ip >>> 24}.${(ip >>> 16) & 0xff}.${(ip >>> 8) & 0xff}.${ip & 0xff}`;
    return { family: 'IPv4', address, port };
  }
  if (family === 0x02 && length === 20) {
    // IPv6: XOR with the magic cookie followed by the transaction ID, i.e. header bytes 4..19.
    const groups: string[] = [];
    for (let i = 0; i < 16; i += 2) {
      groups.push((msg.readUInt16BE(value + 4 + i) ^ msg.readUInt16BE(4 + i)).toString(16));
    }
    return { family: 'IPv6', address: groups.join(':'), port };
  }
  return undefined;
}
