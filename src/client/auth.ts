/**
 * The client side of STUN long-term credentials (RFC 8489 §9.2), as a state object without I/O:
 * the first request goes out unsigned; the 401 teaches REALM, NONCE and (from an RFC 8489 server)
 * PASSWORD-ALGORITHMS; later requests are signed; a 438 teaches a fresh NONCE. Responses are
 * verified with the same key.
 */
import { restPassword } from '../core/auth/rest-secret.js';
import { AttrType } from '../core/constants.js';
import { readBytes, readString } from '../core/stun/attrs.js';
import type { StunView } from '../core/stun/decode.js';
import { longTermKey, verifyMessageIntegrity, verifyMessageIntegritySha256 } from '../core/stun/integrity.js';
import type { Signature } from './messages.js';

export interface LongTermCredentials {
  readonly username: string;
  readonly password: string;
  /** Expected realm; the one from the 401 is used either way, a different one is refused. */
  readonly realm?: string;
  /**
   * Choose PASSWORD-ALGORITHM SHA-256 and sign with MESSAGE-INTEGRITY-SHA256 when the server
   * offers PASSWORD-ALGORITHMS (§9.2.4); MD5 and MESSAGE-INTEGRITY otherwise.
   */
  readonly sha256?: boolean;
  /** Send USERHASH instead of USERNAME (§14.4); the server's nonce must allow it. */
  readonly userhash?: boolean;
}

/** Why a 401/438 could not be learnt from. */
export type ChallengeFailure =
  | { readonly kind: 'no-nonce' }
  | { readonly kind: 'no-realm' }
  | { readonly kind: 'realm-mismatch'; readonly realm: string; readonly expected: string };

export class LongTermAuth {
  readonly credentials: LongTermCredentials;
  /** From the last 401/438. */
  realm: string | undefined = undefined;
  nonce: Buffer | undefined = undefined;
  /** PASSWORD-ALGORITHMS as offered by the server, echoed byte for byte. */
  passwordAlgorithms: Buffer | undefined = undefined;
  /** The key derived for `keyFor`, so it is derived once per realm and algorithm. */
  private cachedKey: Buffer | undefined = undefined;
  private keyFor = '';

  constructor(credentials: LongTermCredentials) {
    this.credentials = credentials;
  }

  /** Realm and nonce are known: requests are signed. */
  get canSign(): boolean {
    return this.realm !== undefined && this.nonce !== undefined;
  }

  /** SHA-256 was asked for and the server offered PASSWORD-ALGORITHMS. */
  get usesSha256(): boolean {
    return this.credentials.sha256 === true && this.passwordAlgorithms !== undefined;
  }

  /**
   * Takes REALM, NONCE and PASSWORD-ALGORITHMS from a 401 or 438 (RFC 8489 §9.2.5). A 438 may omit
   * REALM (the known one stays). Nothing changes when it fails.
   */
  learn(view: StunView): ChallengeFailure | undefined {
    const realm = readString(view, AttrType.Realm);
    const nonce = readBytes(view, AttrType.Nonce);
    if (nonce === undefined) return { kind: 'no-nonce' };
    if (realm === undefined && this.realm === undefined) return { kind: 'no-realm' };
    const expected = this.credentials.realm;
    if (realm !== undefined && expected !== undefined && realm !== expected) {
      return { kind: 'realm-mismatch', realm, expected };
    }
    if (realm !== undefined) this.realm = realm;
    this.nonce = Buffer.from(nonce);
    const algorithms = readBytes(view, AttrType.PasswordAlgorithms);
    this.passwordAlgorithms = algorithms === undefined ? undefined : Buffer.from(algorithms);
    return undefined;
  }

  /** The long-term key for the current realm and algorithm (§9.2.2). Throws before any 401. */
  key(): Buffer {
    if (this.realm === undefined) throw new Error('no realm yet: no 401 received');
    const algorithm = this.usesSha256 ? 'sha256' : 'md5';
    const id = `${algorithm}:${this.realm}`;
    if (this.cachedKey === undefined || this.keyFor !== id) {
      const c = this.credentials;
      this.cachedKey = longTermKey(c.username, this.realm, c.password, algorithm);
      this.keyFor = id;
    }
    return this.cachedKey;
  }

  /** What signs the next request, or undefined before the first challenge. */
  signature(): Signature | undefined {
    if (this.realm === undefined || this.nonce === undefined) return undefined;
    return {
      username: this.credentials.username,
      realm: this.realm,
      nonce: this.nonce,
      key: this.key(),
      sha256: this.usesSha256,
      passwordAlgorithms: this.passwordAlgorithms,
      userhash: this.credentials.userhash === true,
    };
  }

  /**
   * Which integrity attribute of a response verifies with our key: MESSAGE-INTEGRITY-SHA256 when
   * present (it is the one that counts, §14.6), else MESSAGE-INTEGRITY; undefined when neither does.
   */
  verify(view: StunView): 'sha1' | 'sha256' | undefined {
    if (this.realm === undefined) return undefined;
    if (view.integritySha256At >= 0) {
      return verifyMessageIntegritySha256(view, this.key()) ? 'sha256' : undefined;
    }
    if (view.integrityAt >= 0 && verifyMessageIntegrity(view, this.key())) return 'sha1';
    return undefined;
  }
}

/** A plain-words description of a failed challenge. */
export function describeChallengeFailure(f: ChallengeFailure, code: number | undefined): string {
  switch (f.kind) {
    case 'no-nonce':
      return `${code} without NONCE`;
    case 'no-realm':
      return `${code} without REALM`;
    case 'realm-mismatch':
      return `realm ${JSON.stringify(f.realm)} is not the expected ${JSON.stringify(f.expected)}`;
  }
}

/**
 * TURN REST credentials (draft-uberti-behave-turn-rest-00 §2.2): username "<expiry unix seconds>:<user
 * id>", password base64(HMAC-SHA1(secret, username)).
 */
export function restCredentials(
  secret: string,
  userId: string,
  ttlSec = 3600,
  nowSec = Math.floor(Date.now() / 1000),
): { username: string; password: string } {
  const username = `${nowSec + ttlSec}:${userId}`;
  return { username, password: restPassword(secret, username) };
}
