import { AttrType, HEADER_LENGTH, MAGIC_COOKIE, MAX_ATTRIBUTES } from '../constants.js';

/** Why a byte string is not a STUN message we accept. The server drops such input silently. */
export type DecodeFailure =
  | 'short' // fewer than 20 bytes
  | 'type' // the two top bits are not 00
  | 'cookie' // no RFC 8489 magic cookie (RFC 3489 clients are not served)
  | 'length' // length field not a multiple of 4, or not equal to the bytes present
  | 'attr' // an attribute runs past the end, or something follows FINGERPRINT
  | 'too-many-attrs'; // more attributes than the index holds (MAX_ATTRIBUTES + the 3 integrity ones)

/** RFC 8489 §5: the 14-bit message type interleaves method bits M0–M11 with class bits C0, C1. */
export function methodOf(type: number): number {
  return (type & 0x000f) | ((type & 0x00e0) >> 1) | ((type & 0x3e00) >> 2);
}
export function classOf(type: number): number {
  return type & 0x0110;
}
export function messageType(method: number, cls: number): number {
  return (method & 0x000f) | ((method & 0x0070) << 1) | ((method & 0x0f80) << 2) | cls;
}

/**
 * A decoded STUN message as views over the received bytes (no per-attribute objects).
 *
 * `buf` is the message itself; attribute `i` has type `attrType[i]`, its value starts at byte
 * `attrOff[i]` of `buf` and is `attrLen[i]` bytes long (without padding). Only attributes that
 * count are indexed: everything before MESSAGE-INTEGRITY, MESSAGE-INTEGRITY itself,
 * MESSAGE-INTEGRITY-SHA256, and FINGERPRINT (RFC 8489 §14.5: others after MESSAGE-INTEGRITY are
 * ignored). The offsets of the integrity attributes' headers are kept for verification.
 *
 * A view may be reused for the next message (`decodeStunInto`): it is valid only until then.
 */
export class StunView {
  buf: Buffer = Buffer.alloc(0);
  method = 0;
  cls = 0;
  attrCount = 0;
  readonly attrType = new Uint16Array(MAX_ATTRIBUTES + 3);
  readonly attrOff = new Int32Array(MAX_ATTRIBUTES + 3);
  readonly attrLen = new Uint16Array(MAX_ATTRIBUTES + 3);
  /** Offset of the MESSAGE-INTEGRITY attribute header, or -1. */
  integrityAt = -1;
  /** Offset of the MESSAGE-INTEGRITY-SHA256 attribute header, or -1. */
  integritySha256At = -1;
  /** Offset of the FINGERPRINT attribute header, or -1. */
  fingerprintAt = -1;

  /** The 12-byte transaction ID (a view). */
  get transactionId(): Buffer {
    return this.buf.subarray(8, 20);
  }

  /** Index of the first attribute of `type`, or -1. */
  find(type: number): number {
    for (let i = 0; i < this.attrCount; i++) if (this.attrType[i] === type) return i;
    return -1;
  }

  has(type: number): boolean {
    return this.find(type) >= 0;
  }

  /** The value bytes of attribute `i` (a view). */
  value(i: number): Buffer {
    const off = this.attrOff[i]!;
    return this.buf.subarray(off, off + this.attrLen[i]!);
  }
}

/**
 * Decodes `buf` (exactly one message: a UDP datagram or one framed stream message) into `view`.
 * Returns null on success or the reason the bytes were refused. Never throws.
 */
export function decodeStunInto(buf: Buffer, view: StunView): DecodeFailure | null {
  if (buf.length < HEADER_LENGTH) return 'short';
  const type = buf.readUInt16BE(0);
  if (type & 0xc000) return 'type';
  if (buf.readUInt32BE(4) !== MAGIC_COOKIE) return 'cookie';
  const length = buf.readUInt16BE(2);
  if (length & 3 || HEADER_LENGTH + length !== buf.length) return 'length';

  view.buf = buf;
  view.method = methodOf(type);
  view.cls = classOf(type);
  view.attrCount = 0;
  view.integrityAt = -1;
  view.integritySha256At = -1;
  view.fingerprintAt = -1;

  let off = HEADER_LENGTH;
  let n = 0;
  let overflow = false;
  while (off < buf.length) {
    if (off + 4 > buf.length) return 'attr';
    const t = buf.readUInt16BE(off);
    const len = buf.readUInt16BE(off + 2);
    const end = off + 4 + len;
    if (end > buf.length) return 'attr';
    if (view.fingerprintAt >= 0) return 'attr'; // FINGERPRINT must be last (§14.7)
    let index = true;
    if (t === AttrType.Fingerprint) {
      if (len !== 4) return 'attr';
      view.fingerprintAt = off;
    } else if (view.integritySha256At >= 0) {
      index = false; // only FINGERPRINT counts after MESSAGE-INTEGRITY-SHA256
    } else if (t === AttrType.MessageIntegritySha256) {
      // 16 to 32 bytes, a multiple of 4 (§14.6).
      if (len < 16 || len > 32 || len & 3) return 'attr';
      view.integritySha256At = off;
    } else if (view.integrityAt >= 0) {
      index = false;
    } else if (t === AttrType.MessageIntegrity) {
      if (len !== 20) return 'attr';
      view.integrityAt = off;
    }
    if (index && n >= view.attrType.length) {
      overflow = true; // keep checking the structure: a malformed message is 'attr', not this
    } else if (index) {
      view.attrType[n] = t;
      view.attrOff[n] = off + 4;
      view.attrLen[n] = len;
      n++;
    }
    off = end + ((4 - (len & 3)) & 3);
  }
  if (off !== buf.length) return 'attr'; // last attribute's padding runs past the end
  view.attrCount = n;
  if (overflow) return 'too-many-attrs';
  return null;
}

export type DecodeResult = { ok: true; view: StunView } | { ok: false; reason: DecodeFailure };

/** Convenience form of `decodeStunInto` with a fresh view. */
export function decodeStun(buf: Buffer): DecodeResult {
  const view = new StunView();
  const reason = decodeStunInto(buf, view);
  return reason === null ? { ok: true, view } : { ok: false, reason };
}
