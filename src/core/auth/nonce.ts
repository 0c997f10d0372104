/**
 * Stateless NONCE values for the long-term credential mechanism (RFC 8489 §9.2): nothing is stored
 * per client, so a flood of unauthenticated requests costs no memory (coturn `docs/stateless-nonce.md`).
 *
 * Wire format (ASCII, at most 29 bytes; the NONCE attribute pads it to 32):
 *
 * ```
 *   [ "obMatJos2" FFFF ]  BBBBBBBBBBBBBBBB
 *     cookie, 13 chars     body, 16 chars of base64url (RFC 4648 §5, no padding) over 12 bytes:
 *     (only when the         bytes 0..3   issue time, unix seconds, big-endian uint32
 *     server offers          bytes 4..11  HMAC-SHA256(nonceSecret, input) truncated to 64 bits
 *     RFC 8489 features)
 * ```
 *
 * `FFFF` is the standard base64 (RFC 4648 §4) of the 24-bit STUN Security Feature set, bit 0 being
 * the most significant bit of the first byte (RFC 8489 §9.2, §18.1): with both "Password algorithms"
 * and "Username anonymity" set it is `wAAA`. The MAC input is the issue time, the cookie flag, the
 * feature bits, the client port and the client IP text, so a nonce is refused from another address
 * or port, and the feature bits cannot be altered by a man in the middle (bid-down protection,
 * §9.2.1): any change to the nonce breaks its MAC.
 */
import { timingSafeEqual } from 'node:crypto';
import { HmacKey } from '../crypto/hmac.js';

/** RFC 8489 §9.2: the nonce cookie prefix. */
export const NONCE_COOKIE = 'obMatJos2';

/** RFC 8489 §18.1 STUN Security Features, as bits of the 24-bit set (bit 0 = 0x800000). */
export const SecurityFeature = {
  PasswordAlgorithms: 0x800000,
  UsernameAnonymity: 0x400000,
} as const;
export type SecurityFeature = (typeof SecurityFeature)[keyof typeof SecurityFeature];

/** Length of a nonce without / with the RFC 8489 cookie. */
export const PLAIN_NONCE_LENGTH = 16;
export const COOKIE_NONCE_LENGTH = 29;

/** `NonceCodec.check` results below zero. */
export const NONCE_BAD = -1;
export const NONCE_STALE = -2;
/** Set in a non-negative `check` result when the nonce carried the cookie; the low 24 bits are its features. */
export const NONCE_HAS_COOKIE = 0x1000000;

/** A nonce issued up to this many seconds "in the future" (clock steps, a fleet sharing the secret) is accepted. */
const MAX_FUTURE_SKEW_SEC = 60;

const COOKIE_LENGTH = 13; // "obMatJos2" + 4 base64 characters
const BODY_BYTES = 12;
const MAC_BYTES = 8;
const COOKIE_BYTES = Buffer.from(NONCE_COOKIE, 'latin1');
/** Room for the client IP text in the MAC input (IPv6 with a zone fits; longer text is hashed from a copy). */
const MAX_IP_TEXT = 64;

const STD_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const URL_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

function encodeTable(alphabet: string): Uint8Array {
  return Uint8Array.from(alphabet, (c) => c.charCodeAt(0));
}
function decodeTable(alphabet: string): Int8Array {
  const table = new Int8Array(256).fill(-1);
  for (let i = 0; i < alphabet.length; i++) table[alphabet.charCodeAt(i)] = i;
  return table;
}
const STD_ENCODE = encodeTable(STD_ALPHABET);
const URL_ENCODE = encodeTable(URL_ALPHABET);
const STD_DECODE = decodeTable(STD_ALPHABET);
const URL_DECODE = decodeTable(URL_ALPHABET);

/** Writes 24 bits as 4 base64 characters at `out[off..off+4)`. */
function encodeGroup(v: number, table: Uint8Array, out: Buffer, off: number): void {
  out[off] = table[(v >>> 18) & 63]!;
  out[off + 1] = table[(v >>> 12) & 63]!;
  out[off + 2] = table[(v >>> 6) & 63]!;
  out[off + 3] = table[v & 63]!;
}

/** Reads 4 base64 characters at `src[off..off+4)` as 24 bits, or -1 when one is not in the alphabet. */
function decodeGroup(src: Buffer, off: number, table: Int8Array): number {
  const a = table[src[off]!]!;
  const b = table[src[off + 1]!]!;
  const c = table[src[off + 2]!]!;
  const d = table[src[off + 3]!]!;
  if ((a | b | c | d) < 0) return -1;
  return (a << 18) | (b << 12) | (c << 6) | d;
}

/**
 * Issues and checks stateless nonces under one HMAC key. Holds two small scratch buffers, so an
 * instance is for one thread of control (which is all a Node process has).
 */
export class NonceCodec {
  private readonly key: HmacKey;
  private readonly lifetimeSec: number;
  /** Issue output: a view of it is returned by `issue` and valid until the next call. */
  private readonly out = Buffer.alloc(COOKIE_NONCE_LENGTH);
  /** Decoded body of the nonce being checked, and the fixed-size part of the MAC input. */
  private readonly body = Buffer.alloc(BODY_BYTES);
  private readonly macInput = Buffer.alloc(10 + MAX_IP_TEXT);
  private readonly macOutput = Buffer.alloc(32);

  constructor(secret: Buffer, lifetimeSec: number) {
    if (secret.length < 16) throw new RangeError('nonce secret must be at least 16 bytes');
    if (!Number.isInteger(lifetimeSec) || lifetimeSec <= 0) {
      throw new RangeError('nonce lifetime must be a positive whole number of seconds');
    }
    this.key = new HmacKey('sha256', secret);
    this.lifetimeSec = lifetimeSec;
  }

  /**
   * A fresh nonce for `ip`:`port` at `nowSec`. With `features` (a SecurityFeature bit set) the
   * nonce starts with the RFC 8489 cookie; with `null` it is the bare 16-character body (for
   * RFC 5389 deployments). Returns a view of an internal buffer, valid until the next call:
   * copy it (StunWriter.addBytes does) before issuing another.
   */
  issue(ip: string, port: number, nowSec: number, features: number | null): Buffer {
    const out = this.out;
    let off = 0;
    if (features !== null) {
      COOKIE_BYTES.copy(out, 0);
      encodeGroup(features & 0xffffff, STD_ENCODE, out, COOKIE_BYTES.length);
      off = COOKIE_LENGTH;
    }
    const body = this.body;
    const issued = nowSec >>> 0;
    body.writeUInt32BE(issued, 0);
    this.mac(issued, features, ip, port).copy(body, 4, 0, MAC_BYTES);
    for (let k = 0; k < BODY_BYTES; k += 3) {
      encodeGroup((body[k]! << 16) | (body[k + 1]! << 8) | body[k + 2]!, URL_ENCODE, out, off);
      off += 4;
    }
    return out.subarray(0, off);
  }

  /**
   * Checks a NONCE value received from `ip`:`port`. Returns NONCE_BAD when it was not issued by
   * this key for that address (malformed, tampered, another client), NONCE_STALE when genuine but
   * older than the lifetime, else the feature bits it carried, plus NONCE_HAS_COOKIE when it had
   * the cookie. The MAC comparison is constant-time. Never throws.
   */
  check(value: Buffer, ip: string, port: number, nowSec: number): number {
    let off = 0;
    let features: number | null = null;
    if (value.length === COOKIE_NONCE_LENGTH) {
      if (COOKIE_BYTES.compare(value, 0, COOKIE_BYTES.length) !== 0) return NONCE_BAD;
      features = decodeGroup(value, COOKIE_BYTES.length, STD_DECODE);
      if (features < 0) return NONCE_BAD;
      off = COOKIE_LENGTH;
    } else if (value.length !== PLAIN_NONCE_LENGTH) {
      return NONCE_BAD;
    }
    const body = this.body;
    for (let k = 0; k < BODY_BYTES; k += 3) {
      const v = decodeGroup(value, off, URL_DECODE);
      if (v < 0) return NONCE_BAD;
      body[k] = v >>> 16;
      body[k + 1] = (v >>> 8) & 0xff;
      body[k + 2] = v & 0xff;
      off += 4;
    }
    const issued = body.readUInt32BE(0);
    const mac = this.mac(issued, features, ip, port);
    if (!timingSafeEqual(mac.subarray(0, MAC_BYTES), body.subarray(4, 4 + MAC_BYTES))) return NONCE_BAD;
    const ageSec = ((nowSec >>> 0) - issued) | 0;
    if (ageSec >= this.lifetimeSec || ageSec < -MAX_FUTURE_SKEW_SEC) return NONCE_STALE;
    return features === null ? 0 : features | NONCE_HAS_COOKIE;
  }

  /** HMAC-SHA256 over issue time ‖ cookie flag ‖ features ‖ port ‖ IP text, in a scratch buffer valid until the next call. */
  private mac(issued: number, features: number | null, ip: string, port: number): Buffer {
    const m = this.macInput;
    m.writeUInt32BE(issued, 0);
    m.writeUInt32BE(features === null ? 0 : (0x01000000 | (features & 0xffffff)) >>> 0, 4);
    m.writeUInt16BE(port & 0xffff, 8);
    const k = this.key.begin();
    if (ip.length <= MAX_IP_TEXT) {
      const n = m.write(ip, 10, 'latin1');
      k.update(m, 0, 10 + n);
    } else {
      k.update(m, 0, 10).update(Buffer.from(ip, 'latin1'));
    }
    k.end(this.macOutput, 0);
    return this.macOutput;
  }
}
