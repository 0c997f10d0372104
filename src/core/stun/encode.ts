/**
 * StunWriter builds one STUN message into a buffer it owns, attribute by attribute, keeping the
 * header's length field current so integrity attributes can be appended at any time. Padding bytes
 * are always zero (a leak of stale memory through padding was CVE-2020-4067 in coturn).
 *
 * Values the writer is given come from the server itself (its own addresses, codes, keys), so a
 * bad one is a programming error and throws; client bytes never reach the writer unchecked.
 */
import { AttrType, Family, HEADER_LENGTH, MAGIC_COOKIE } from '../constants.js';
import { writeIPv4, writeIPv6 } from '../ip.js';
import { classOf, messageType, methodOf } from './decode.js';
import { fingerprintOf, hmacWithLength } from './integrity.js';

export class StunWriter {
  private buf: Buffer;
  private pos = 0;

  constructor(capacity = 512) {
    this.buf = Buffer.allocUnsafe(Math.max(capacity, HEADER_LENGTH));
  }

  /** Starts a message. `transactionId` must be 12 bytes. */
  start(method: number, cls: number, transactionId: Uint8Array): this {
    if (transactionId.length !== 12) throw new RangeError('transaction ID must be 12 bytes');
    const b = this.buf;
    b.writeUInt16BE(messageType(method, cls), 0);
    b.writeUInt16BE(0, 2);
    b.writeUInt32BE(MAGIC_COOKIE, 4);
    b.set(transactionId, 8);
    this.pos = HEADER_LENGTH;
    return this;
  }

  /** Starts a response to `request` (a decoded message): copies its transaction ID without a view. */
  startResponse(method: number, cls: number, request: Buffer): this {
    const b = this.buf;
    b.writeUInt16BE(messageType(method, cls), 0);
    b.writeUInt16BE(0, 2);
    b.writeUInt32BE(MAGIC_COOKIE, 4);
    request.copy(b, 8, 8, HEADER_LENGTH);
    this.pos = HEADER_LENGTH;
    return this;
  }

  /** Method and class of the message being written. */
  get method(): number {
    return methodOf(this.buf.readUInt16BE(0));
  }

  get cls(): number {
    return classOf(this.buf.readUInt16BE(0));
  }

  /** Bytes written so far. */
  get length(): number {
    return this.pos;
  }

  private ensure(extra: number): void {
    const need = this.pos + extra;
    if (need <= this.buf.length) return;
    if (need > HEADER_LENGTH + 0xffff) throw new RangeError('STUN message too long');
    const next = Buffer.allocUnsafe(Math.max(need, this.buf.length * 2));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  /** Appends an attribute header for a `len`-byte value and returns the value's offset. */
  private open(type: number, len: number): number {
    if (len > 0xffff) throw new RangeError('attribute too long');
    const padded = (len + 3) & ~3;
    this.ensure(4 + padded);
    const b = this.buf;
    b.writeUInt16BE(type, this.pos);
    b.writeUInt16BE(len, this.pos + 2);
    const off = this.pos + 4;
    b.fill(0, off + len, off + padded);
    this.pos = off + padded;
    b.writeUInt16BE(this.pos - HEADER_LENGTH, 2);
    return off;
  }

  /** Any attribute from raw value bytes. */
  addBytes(type: number, value: Uint8Array): this {
    const off = this.open(type, value.length);
    this.buf.set(value, off);
    return this;
  }

  /** A UTF-8 text attribute. */
  addString(type: number, value: string): this {
    return this.addBytes(type, Buffer.from(value, 'utf8'));
  }

  /** A zero-length attribute (DONT-FRAGMENT). */
  addFlag(type: number): this {
    this.open(type, 0);
    return this;
  }

  addUint32(type: number, value: number): this {
    const off = this.open(type, 4);
    this.buf.writeUInt32BE(value >>> 0, off);
    return this;
  }

  /** One byte followed by 3 zero RFFU bytes (REQUESTED-TRANSPORT, REQUESTED-/ADDITIONAL-ADDRESS-FAMILY). */
  addLeadingByte(type: number, value: number): this {
    const off = this.open(type, 4);
    this.buf.writeUInt32BE(((value & 0xff) << 24) >>> 0, off);
    return this;
  }

  /** CHANNEL-NUMBER: the number then 16 RFFU bits. */
  addChannelNumber(channel: number): this {
    const off = this.open(AttrType.ChannelNumber, 4);
    this.buf.writeUInt16BE(channel, off);
    this.buf.writeUInt16BE(0, off + 2);
    return this;
  }

  /** EVEN-PORT with the R bit. */
  addEvenPort(reserveNext: boolean): this {
    const off = this.open(AttrType.EvenPort, 1);
    this.buf[off] = reserveNext ? 0x80 : 0;
    return this;
  }

  /**
   * MAPPED-ADDRESS/ALTERNATE-SERVER, or with `xor` an XOR-…-ADDRESS (RFC 8489 §14.1/§14.2).
   * `address` is an IP literal (IPv4 dotted quad or IPv6 text).
   */
  addAddress(type: number, address: string, port: number, xor: boolean): this {
    const isV4 = !address.includes(':');
    const off = this.open(type, isV4 ? 8 : 20);
    const b = this.buf;
    b[off] = 0;
    b[off + 1] = isV4 ? Family.IPv4 : Family.IPv6;
    b.writeUInt16BE(xor ? (port ^ (MAGIC_COOKIE >>> 16)) & 0xffff : port, off + 2);
    const ok = isV4 ? writeIPv4(address, b, off + 4) : writeIPv6(address, b, off + 4);
    if (!ok) throw new TypeError(`not an IP address: ${address}`);
    if (xor) {
      const n = isV4 ? 4 : 16;
      for (let k = 0; k < n; k++) b[off + 4 + k]! ^= b[4 + k]!;
    }
    return this;
  }

  /** ERROR-CODE (RFC 8489 §14.8); the reason phrase is optional (empty keeps responses small). */
  addErrorCode(code: number, reason = ''): this {
    return this.writeCode(AttrType.ErrorCode, 0, code, reason);
  }

  /** ADDRESS-ERROR-CODE (RFC 8656 §18.12). */
  addAddressErrorCode(family: number, code: number, reason = ''): this {
    return this.writeCode(AttrType.AddressErrorCode, family, code, reason);
  }

  private writeCode(type: number, first: number, code: number, reason: string): this {
    if (code < 300 || code > 699) throw new RangeError(`error code out of range: ${code}`);
    const text = Buffer.from(reason, 'utf8');
    const off = this.open(type, 4 + text.length);
    const b = this.buf;
    b[off] = first;
    b[off + 1] = 0;
    b[off + 2] = Math.floor(code / 100);
    b[off + 3] = code % 100;
    b.set(text, off + 4);
    return this;
  }

  /** UNKNOWN-ATTRIBUTES (RFC 8489 §14.9). */
  addUnknownAttributes(types: readonly number[]): this {
    const off = this.open(AttrType.UnknownAttributes, types.length * 2);
    for (let k = 0; k < types.length; k++) this.buf.writeUInt16BE(types[k]!, off + 2 * k);
    return this;
  }

  /** PASSWORD-ALGORITHMS (RFC 8489 §14.11): algorithms without parameters. */
  addPasswordAlgorithms(algorithms: readonly number[]): this {
    const off = this.open(AttrType.PasswordAlgorithms, algorithms.length * 4);
    for (let k = 0; k < algorithms.length; k++) {
      this.buf.writeUInt16BE(algorithms[k]!, off + 4 * k);
      this.buf.writeUInt16BE(0, off + 4 * k + 2);
    }
    return this;
  }

  /** PASSWORD-ALGORITHM (RFC 8489 §14.12) without parameters. */
  addPasswordAlgorithm(algorithm: number): this {
    const off = this.open(AttrType.PasswordAlgorithm, 4);
    this.buf.writeUInt16BE(algorithm, off);
    this.buf.writeUInt16BE(0, off + 2);
    return this;
  }

  /** ICMP (RFC 8656 §18.13). */
  addIcmp(icmpType: number, icmpCode: number, errorData: number): this {
    const off = this.open(AttrType.Icmp, 8);
    this.buf.writeUInt16BE(0, off);
    this.buf[off + 2] = icmpType;
    this.buf[off + 3] = icmpCode;
    this.buf.writeUInt32BE(errorData >>> 0, off + 4);
    return this;
  }

  /** MESSAGE-INTEGRITY: HMAC-SHA1 with `key` over everything so far (RFC 8489 §14.5). */
  addMessageIntegrity(key: Buffer): this {
    const at = this.pos;
    const mac = hmacWithLength('sha1', key, this.buf, at, at + 24 - HEADER_LENGTH);
    return this.addBytes(AttrType.MessageIntegrity, mac);
  }

  /** MESSAGE-INTEGRITY-SHA256 (RFC 8489 §14.6), full 32 bytes. */
  addMessageIntegritySha256(key: Buffer): this {
    const at = this.pos;
    const mac = hmacWithLength('sha256', key, this.buf, at, at + 36 - HEADER_LENGTH);
    return this.addBytes(AttrType.MessageIntegritySha256, mac);
  }

  /** FINGERPRINT (RFC 8489 §14.7); must be the last attribute. */
  addFingerprint(): this {
    const off = this.open(AttrType.Fingerprint, 4);
    this.buf.writeUInt32BE(fingerprintOf(this.buf, off - 4), off);
    return this;
  }

  /** The finished message: a copy the caller owns, so the writer can be reused at once. */
  finish(): Buffer {
    return Buffer.from(this.buf.subarray(0, this.pos));
  }
}
