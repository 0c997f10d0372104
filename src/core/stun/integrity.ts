/**
 * MESSAGE-INTEGRITY (HMAC-SHA1, RFC 8489 §14.5), MESSAGE-INTEGRITY-SHA256 (§14.6) and FINGERPRINT
 * (§14.7), all computed over the received bytes, never over a re-encoding. The HMAC input is the
 * message up to the attribute with the header's length field rewritten as if the attribute were
 * the last one. Comparisons are constant-time.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { crc32 } from 'node:zlib';
import { FINGERPRINT_XOR, HEADER_LENGTH } from '../constants.js';
import { HmacKey } from '../crypto/hmac.js';
import type { StunView } from './decode.js';

/**
 * Precomputed HMAC keys by key buffer. Long-term keys are derived once per user (static users) or
 * cached by the authenticator (REST), so the same Buffer comes back request after request; a key
 * nobody holds any more is collected with its entry.
 */
const SHA1_KEYS = new WeakMap<Buffer, HmacKey>();
const SHA256_KEYS = new WeakMap<Buffer, HmacKey>();

/** The precomputed HMAC key for `key`. */
export function hmacKey(algorithm: 'sha1' | 'sha256', key: Buffer): HmacKey {
  const cache = algorithm === 'sha1' ? SHA1_KEYS : SHA256_KEYS;
  let k = cache.get(key);
  if (k === undefined) {
    k = new HmacKey(algorithm, key);
    cache.set(key, k);
  }
  return k;
}

/** Header scratch for the rewritten length field. */
const LENGTH_FIELD = Buffer.alloc(2);

/** HMAC over `buf[0..end)` with the header length replaced by `adjustedLength`. */
export function hmacWithLength(
  algorithm: 'sha1' | 'sha256',
  key: Buffer,
  buf: Buffer,
  end: number,
  adjustedLength: number,
): Buffer {
  const k = hmacKey(algorithm, key);
  LENGTH_FIELD.writeUInt16BE(adjustedLength, 0);
  const out = Buffer.allocUnsafe(k.length);
  k.begin().update(buf, 0, 2).update(LENGTH_FIELD, 0, 2).update(buf, 4, end).end(out, 0);
  return out;
}

/** Verifies MESSAGE-INTEGRITY with `key`. False when absent or wrong. */
export function verifyMessageIntegrity(view: StunView, key: Buffer): boolean {
  const at = view.integrityAt;
  if (at < 0) return false;
  const mac = hmacWithLength('sha1', key, view.buf, at, at + 4 + 20 - HEADER_LENGTH);
  return timingSafeEqual(mac, view.buf.subarray(at + 4, at + 24));
}

/** Verifies MESSAGE-INTEGRITY-SHA256 (possibly truncated to 16–28 bytes) with `key`. */
export function verifyMessageIntegritySha256(view: StunView, key: Buffer): boolean {
  const at = view.integritySha256At;
  if (at < 0) return false;
  const len = view.buf.readUInt16BE(at + 2);
  const mac = hmacWithLength('sha256', key, view.buf, at, at + 4 + len - HEADER_LENGTH);
  return timingSafeEqual(mac.subarray(0, len), view.buf.subarray(at + 4, at + 4 + len));
}

/** CRC-32 of `buf[0..end)` XOR 0x5354554e. */
export function fingerprintOf(buf: Buffer, end: number): number {
  return (crc32(buf.subarray(0, end)) ^ FINGERPRINT_XOR) >>> 0;
}

/** True when the message has no FINGERPRINT or a correct one. */
export function verifyFingerprint(view: StunView): boolean {
  const at = view.fingerprintAt;
  if (at < 0) return true;
  return fingerprintOf(view.buf, at) === view.buf.readUInt32BE(at + 4);
}

/**
 * Long-term credential key (RFC 8489 §9.2.2): MD5 or SHA-256 of `username:realm:password`.
 * The strings are used as given (UTF-8); OpaqueString preparation leaves ASCII unchanged.
 */
export function longTermKey(
  username: string,
  realm: string,
  password: string,
  algorithm: 'md5' | 'sha256' = 'md5',
): Buffer {
  return createHash(algorithm).update(`${username}:${realm}:${password}`, 'utf8').digest();
}
