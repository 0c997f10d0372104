/**
 * Typed readers of STUN/TURN attributes over a `StunView`. Each returns `undefined` when the
 * attribute is absent or malformed, never throws. RFC sections are given per reader.
 */
import { AttrType, Family, MAGIC_COOKIE } from '../constants.js';
import { formatIPv4, formatIPv6 } from '../ip.js';
import type { StunView } from './decode.js';

/** A transport address as carried by (XOR-)address attributes. */
export interface TransportAddress {
  readonly family: Family;
  readonly address: string;
  readonly port: number;
}

const scratch = Buffer.alloc(16);

/**
 * Reads attribute index `i` as MAPPED-ADDRESS (RFC 8489 §14.1) or, with `xor`, as an
 * XOR-…-ADDRESS (§14.2: port XOR the cookie's top 16 bits; address XOR cookie ‖ transaction ID).
 */
export function readAddressAt(view: StunView, i: number, xor: boolean): TransportAddress | undefined {
  const off = view.attrOff[i]!;
  const len = view.attrLen[i]!;
  const b = view.buf;
  if (len < 4) return undefined;
  const family = b[off + 1]!;
  let port = b.readUInt16BE(off + 2);
  if (xor) port ^= MAGIC_COOKIE >>> 16;
  if (family === Family.IPv4) {
    if (len !== 8) return undefined;
    for (let k = 0; k < 4; k++) scratch[k] = b[off + 4 + k]! ^ (xor ? b[4 + k]! : 0);
    return { family: Family.IPv4, address: formatIPv4(scratch, 0), port };
  }
  if (family === Family.IPv6) {
    if (len !== 20) return undefined;
    // Bytes 4..19 of the header are the cookie followed by the transaction ID.
    for (let k = 0; k < 16; k++) scratch[k] = b[off + 4 + k]! ^ (xor ? b[4 + k]! : 0);
    return { family: Family.IPv6, address: formatIPv6(scratch, 0), port };
  }
  return undefined;
}

/**
 * The IP bytes of the first XOR-PEER-ADDRESS (or other XOR address attribute of `type`), decoded
 * into `out` (16 bytes): returns 4 or 16, or 0 when there is none or it is malformed. Lets a caller
 * that already has the address as text check it without parsing the text again.
 */
export function readXorAddressBytes(view: StunView, type: number, out: Uint8Array): 0 | 4 | 16 {
  const i = view.find(type);
  if (i < 0) return 0;
  const off = view.attrOff[i]!;
  const len = view.attrLen[i]!;
  const b = view.buf;
  const n = len === 8 && b[off + 1] === Family.IPv4 ? 4 : len === 20 && b[off + 1] === Family.IPv6 ? 16 : 0;
  for (let k = 0; k < n; k++) out[k] = b[off + 4 + k]! ^ b[4 + k]!;
  return n;
}

function isXorType(type: number): boolean {
  return (
    type === AttrType.XorMappedAddress ||
    type === AttrType.XorPeerAddress ||
    type === AttrType.XorRelayedAddress
  );
}

/** The first address attribute of `type` (MAPPED-ADDRESS, ALTERNATE-SERVER or an XOR form). */
export function readAddress(view: StunView, type: number): TransportAddress | undefined {
  const i = view.find(type);
  return i < 0 ? undefined : readAddressAt(view, i, isXorType(type));
}

/**
 * Every attribute of `type` as addresses (CreatePermission may carry several XOR-PEER-ADDRESS,
 * RFC 8656 §9.1; an Allocate success may carry two XOR-RELAYED-ADDRESS, §7.3). `undefined` when
 * any of them is malformed; an empty array when there is none.
 */
export function readAddresses(view: StunView, type: number): TransportAddress[] | undefined {
  const out: TransportAddress[] = [];
  const xor = isXorType(type);
  for (let i = 0; i < view.attrCount; i++) {
    if (view.attrType[i] !== type) continue;
    const a = readAddressAt(view, i, xor);
    if (a === undefined) return undefined;
    out.push(a);
  }
  return out;
}

/** A 32-bit value attribute (LIFETIME, RFC 8656 §18.2; CONNECTION-ID, RFC 6062 §6.2.1). */
export function readUint32(view: StunView, type: number): number | undefined {
  const i = view.find(type);
  if (i < 0 || view.attrLen[i] !== 4) return undefined;
  return view.buf.readUInt32BE(view.attrOff[i]!);
}

/** CHANNEL-NUMBER (RFC 8656 §18.1): 16-bit number then 16 RFFU bits. */
export function readChannelNumber(view: StunView): number | undefined {
  const i = view.find(AttrType.ChannelNumber);
  if (i < 0 || view.attrLen[i] !== 4) return undefined;
  return view.buf.readUInt16BE(view.attrOff[i]!);
}

/**
 * The first byte of a 4-byte attribute whose other 3 bytes are RFFU: REQUESTED-TRANSPORT
 * (§18.7, protocol number), REQUESTED-ADDRESS-FAMILY and ADDITIONAL-ADDRESS-FAMILY (§18.9/§18.10).
 */
export function readLeadingByte(view: StunView, type: number): number | undefined {
  const i = view.find(type);
  if (i < 0 || view.attrLen[i] !== 4) return undefined;
  return view.buf[view.attrOff[i]!];
}

/** EVEN-PORT (RFC 8656 §18.8): one byte whose top bit R asks to reserve the next port. */
export function readEvenPort(view: StunView): { reserveNext: boolean } | undefined {
  const i = view.find(AttrType.EvenPort);
  if (i < 0 || view.attrLen[i]! < 1) return undefined;
  return { reserveNext: (view.buf[view.attrOff[i]!]! & 0x80) !== 0 };
}

/** A UTF-8 text attribute (USERNAME, REALM, NONCE, SOFTWARE, ALTERNATE-DOMAIN). */
export function readString(view: StunView, type: number): string | undefined {
  const i = view.find(type);
  if (i < 0) return undefined;
  return view.value(i).toString('utf8');
}

/** An opaque attribute value as a view (DATA, USERHASH, RESERVATION-TOKEN, MOBILITY-TICKET). */
export function readBytes(view: StunView, type: number): Buffer | undefined {
  const i = view.find(type);
  return i < 0 ? undefined : view.value(i);
}

/** ERROR-CODE (RFC 8489 §14.8): 21 zero bits, class (3 bits), number (8 bits), reason phrase. */
export function readErrorCode(view: StunView): { code: number; reason: string } | undefined {
  const i = view.find(AttrType.ErrorCode);
  if (i < 0 || view.attrLen[i]! < 4) return undefined;
  const off = view.attrOff[i]!;
  const cls = view.buf[off + 2]! & 0x07;
  const num = view.buf[off + 3]!;
  if (cls < 3 || cls > 6 || num > 99) return undefined;
  return { code: cls * 100 + num, reason: view.buf.toString('utf8', off + 4, off + view.attrLen[i]!) };
}

/** UNKNOWN-ATTRIBUTES (RFC 8489 §14.9): a list of 16-bit types. */
export function readUnknownAttributes(view: StunView): number[] | undefined {
  const i = view.find(AttrType.UnknownAttributes);
  if (i < 0 || view.attrLen[i]! & 1) return undefined;
  const out: number[] = [];
  const off = view.attrOff[i]!;
  for (let k = 0; k < view.attrLen[i]!; k += 2) out.push(view.buf.readUInt16BE(off + k));
  return out;
}

/** One entry of PASSWORD-ALGORITHMS, or the PASSWORD-ALGORITHM attribute (RFC 8489 §14.11/§14.12). */
export interface PasswordAlgorithmEntry {
  readonly algorithm: number;
  readonly params: Buffer;
}

function readAlgorithmList(v: Buffer): PasswordAlgorithmEntry[] | undefined {
  const out: PasswordAlgorithmEntry[] = [];
  let off = 0;
  while (off < v.length) {
    if (off + 4 > v.length) return undefined;
    const algorithm = v.readUInt16BE(off);
    const plen = v.readUInt16BE(off + 2);
    const end = off + 4 + plen;
    if (end > v.length) return undefined;
    out.push({ algorithm, params: v.subarray(off + 4, end) });
    off = end + ((4 - (plen & 3)) & 3);
  }
  return off === v.length ? out : undefined;
}

export function readPasswordAlgorithms(view: StunView): PasswordAlgorithmEntry[] | undefined {
  const v = readBytes(view, AttrType.PasswordAlgorithms);
  return v === undefined ? undefined : readAlgorithmList(v);
}

export function readPasswordAlgorithm(view: StunView): PasswordAlgorithmEntry | undefined {
  const v = readBytes(view, AttrType.PasswordAlgorithm);
  if (v === undefined) return undefined;
  const list = readAlgorithmList(v);
  return list?.length === 1 ? list[0] : undefined;
}

/** ICMP (RFC 8656 §18.13): 2 RFFU bytes, ICMP type, ICMP code, 4 bytes of error data. */
export function readIcmp(view: StunView): { type: number; code: number; data: number } | undefined {
  const i = view.find(AttrType.Icmp);
  if (i < 0 || view.attrLen[i] !== 8) return undefined;
  const off = view.attrOff[i]!;
  return { type: view.buf[off + 2]!, code: view.buf[off + 3]!, data: view.buf.readUInt32BE(off + 4) };
}

/** ADDRESS-ERROR-CODE (RFC 8656 §18.12): family, RFFU, class, number, reason. */
export function readAddressErrorCode(
  view: StunView,
): { family: number; code: number; reason: string } | undefined {
  const i = view.find(AttrType.AddressErrorCode);
  if (i < 0 || view.attrLen[i]! < 4) return undefined;
  const off = view.attrOff[i]!;
  const cls = view.buf[off + 2]! & 0x07;
  const num = view.buf[off + 3]!;
  if (cls < 3 || cls > 6 || num > 99) return undefined;
  return {
    family: view.buf[off]!,
    code: cls * 100 + num,
    reason: view.buf.toString('utf8', off + 4, off + view.attrLen[i]!),
  };
}

/** Attribute types this server understands; any other comprehension-required type is answered with 420. */
export const KNOWN_ATTRIBUTES: ReadonlySet<number> = new Set<number>(Object.values(AttrType));

/** Comprehension-required attributes (< 0x8000) in the message that are not in `known`. */
export function unknownRequiredAttributes(
  view: StunView,
  known: ReadonlySet<number> = KNOWN_ATTRIBUTES,
): readonly number[] {
  let out: number[] | undefined;
  for (let i = 0; i < view.attrCount; i++) {
    const t = view.attrType[i]!;
    if (t < 0x8000 && !known.has(t)) {
      out ??= [];
      if (!out.includes(t)) out.push(t);
    }
  }
  return out ?? NONE;
}
const NONE: readonly number[] = Object.freeze([]);
