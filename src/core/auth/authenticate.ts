/**
 * Long-term credential authentication of TURN requests (RFC 8489 §9.2.4, RFC 8656 §5), with static
 * users, TURN REST API credentials, stateless nonces, PASSWORD-ALGORITHMS with bid-down protection,
 * and USERHASH. Pure: no I/O, no timers, no logging; time is injected; never throws on client bytes.
 *
 * Order of the checks (each refusal is a preallocated value, so refusing costs no allocation):
 *  1. No MESSAGE-INTEGRITY(-SHA256): 401 'missing-credentials' (§9.2.4 bullet 1).
 *  2. USERNAME or USERHASH (exactly one), REALM and NONCE must be present: else 400 'bad-request'
 *     (bullet 2). A USERNAME must be valid UTF-8 of at most 512 bytes.
 *  3. REALM must be ours: else 401 'wrong-realm'.
 *  4. NONCE: one HMAC-SHA256 over a few bytes. Not ours / tampered / other address → 438 'bad-nonce' (a client retries a 438 with the fresh nonce, e.g. after reconnecting over TCP from a new port; RFC 8489 §9.2.5 says it would not retry a 401);
 *     genuine but expired → 438 'stale-nonce'. (RFC 8489 lists the stale check last, after integrity;
 *     it runs here, before any per-user work, so requests with old nonces cost one HMAC. No code
 *     in steps 1–5 depends on which users exist.)
 *  5. Bid-down (bullet 3): with a cookie nonce carrying "Password algorithms", either neither
 *     PASSWORD-ALGORITHMS nor PASSWORD-ALGORITHM (→ MD5, an RFC 5389 client), or both, with
 *     PASSWORD-ALGORITHMS byte-identical to our offer and PASSWORD-ALGORITHM one of its entries;
 *     else 400 'bid-down'. Either attribute with a nonce that offered nothing is also 'bid-down'.
 *  6. The user (bullet 4), all 401: USERHASH without "Username anonymity" in the nonce, or matching
 *     no static user → 'unknown-user'; static users by name first; then, with REST enabled, a
 *     `<expiry>[:<id>]` name ('expired-username' when past, without touching the secrets); a
 *     SHA-256 request for a user configured only by MD5 key → 'unsupported-algorithm'.
 *  7. Integrity (bullet 5): MESSAGE-INTEGRITY-SHA256 when present, else MESSAGE-INTEGRITY; REST
 *     names are tried under every secret. Wrong → 401 'bad-integrity'. An unknown user gets one
 *     dummy verification so that its refusal takes about as long as a wrong password's.
 *  8. Revocation: a REST credential whose integrity is good but whose user id `isRevoked` reports
 *     (the operator revoked it before its expiry without rotating the secret) → 401 'revoked'.
 *
 * The caller answers every 401/438 with `addChallenge` (RFC 8489 requires PASSWORD-ALGORITHMS in
 * the 401 after bullet 4 and in 438s, so pass `offerAlgorithms` = true there unless SHA-256 is
 * disabled), and a 400 without it.
 */
import { isUtf8 } from 'node:buffer';
import { AttrType, PasswordAlgorithm } from '../constants.js';
import { trimOldest } from '../fifo-trim.js';
import type { StunView } from '../stun/decode.js';
import type { StunWriter } from '../stun/encode.js';
import { longTermKey, verifyMessageIntegrity, verifyMessageIntegritySha256 } from '../stun/integrity.js';
import { type CredentialSource, StaticUsers } from './credentials.js';
import { NONCE_BAD, NONCE_HAS_COOKIE, NONCE_STALE, NonceCodec, SecurityFeature } from './nonce.js';
import { parseRestUsername, restPassword } from './rest-secret.js';

export interface AuthOptions {
  readonly realm: string;
  /** "name:password" or "name:0x<32 hex md5 key>" (the key is MD5(name:realm:password)). */
  readonly users: readonly string[];
  /** TURN REST API credentials enabled. */
  readonly useAuthSecret: boolean;
  /** Several at once for rotation; any may verify. */
  readonly staticAuthSecrets: readonly string[];
  /** Nonce lifetime. */
  readonly staleNonceSec: number;
  /** HMAC key for stateless nonces (random per process unless configured); at least 16 bytes. */
  readonly nonceSecret: Buffer;
  /**
   * Whether a REST user id is revoked at `nowSec` (checked only for REST credentials, after their
   * integrity verified). Must be cheap and must not throw: it runs on every authenticated request.
   */
  readonly isRevoked?: (userId: string, nowSec: number) => boolean;
  /** Users and REST secrets kept elsewhere (fleet mode's user database), after the configured ones. */
  readonly source?: CredentialSource;
}

export type AuthFailureReason =
  | 'missing-credentials'
  | 'bad-request'
  | 'stale-nonce'
  | 'bad-nonce'
  | 'wrong-realm'
  | 'unknown-user'
  | 'expired-username'
  | 'bad-integrity'
  | 'bid-down'
  | 'unsupported-algorithm'
  | 'revoked';

export type AuthResult =
  | { ok: true; username: string; userId: string; key: Buffer; integrity: 'sha1' | 'sha256' }
  | { ok: false; code: 400 | 401 | 438; reason: AuthFailureReason };

export type AuthSuccess = Extract<AuthResult, { ok: true }>;
export type AuthFailure = Extract<AuthResult, { ok: false }>;

function failure(code: 400 | 401 | 438, reason: AuthFailureReason): AuthFailure {
  return Object.freeze({ ok: false, code, reason });
}

/** One shared, frozen value per refusal. */
export const AUTH_FAILURES: { readonly [R in AuthFailureReason]: AuthFailure } = Object.freeze({
  'missing-credentials': failure(401, 'missing-credentials'),
  'bad-request': failure(400, 'bad-request'),
  'stale-nonce': failure(438, 'stale-nonce'),
  'bad-nonce': failure(438, 'bad-nonce'),
  'wrong-realm': failure(401, 'wrong-realm'),
  'unknown-user': failure(401, 'unknown-user'),
  'expired-username': failure(401, 'expired-username'),
  'bad-integrity': failure(401, 'bad-integrity'),
  'bid-down': failure(400, 'bid-down'),
  'unsupported-algorithm': failure(401, 'unsupported-algorithm'),
  revoked: failure(401, 'revoked'),
});

/** The algorithms we offer, in our order of preference (RFC 8489 §14.11, §18.5). */
export const OFFERED_PASSWORD_ALGORITHMS: readonly PasswordAlgorithm[] = Object.freeze([
  PasswordAlgorithm.SHA256,
  PasswordAlgorithm.MD5,
]);

/** PASSWORD-ALGORITHMS value bytes as we send them: each algorithm with a zero parameter length. */
const OFFERED_BYTES = (() => {
  const b = Buffer.alloc(4 * OFFERED_PASSWORD_ALGORITHMS.length);
  for (let k = 0; k < OFFERED_PASSWORD_ALGORITHMS.length; k++)
    b.writeUInt16BE(OFFERED_PASSWORD_ALGORITHMS[k]!, 4 * k);
  return b;
})();

/** Security features advertised by a cookie nonce: we offer algorithms and accept USERHASH. */
const OFFERED_FEATURES = SecurityFeature.PasswordAlgorithms | SecurityFeature.UsernameAnonymity;

/** RFC 8489 §14.3: USERNAME is fewer than 509 bytes; a little slack, then it is malformed. */
const MAX_USERNAME_BYTES = 512;

/** REST keys kept per authenticator; a username is under 513 bytes, so this is at most a few MiB. */
const REST_KEY_CACHE = 4096;

/** Attribute indexes the checks need, found in one pass. */
interface Found {
  username: number;
  userhash: number;
  realm: number;
  nonce: number;
  algorithms: number;
  algorithm: number;
}

export class Authenticator {
  private readonly options: AuthOptions;
  private readonly realm: string;
  private readonly realmBytes: Buffer;
  private readonly users: StaticUsers;
  private readonly useAuthSecret: boolean;
  private readonly staticSecrets: readonly string[];
  /** The configured secrets, then the source's; rebuilt when the source's version changes. */
  private secrets: readonly string[];
  private readonly source: CredentialSource | undefined;
  private sourceVersion = -1;
  private readonly isRevoked: ((userId: string, nowSec: number) => boolean) | undefined;
  private readonly nonces: NonceCodec;
  /** Verified REST long-term keys by secret number, algorithm and username (see cacheRestKey). */
  private readonly restKeys = new Map<string, Buffer>();
  /** Used only to spend an unknown user's refusal on an HMAC like a known user's. */
  private readonly dummyKey: Buffer;
  private readonly found: Found = {
    username: -1,
    userhash: -1,
    realm: -1,
    nonce: -1,
    algorithms: -1,
    algorithm: -1,
  };

  /** Throws on invalid options (a malformed user entry, a short nonce secret, a non-positive lifetime). */
  constructor(options: AuthOptions) {
    this.options = {
      ...options,
      users: [...options.users],
      staticAuthSecrets: [...options.staticAuthSecrets],
    };
    this.realm = options.realm;
    this.realmBytes = Buffer.from(options.realm, 'utf8');
    this.users = new StaticUsers(options.users, options.realm);
    this.useAuthSecret = options.useAuthSecret;
    this.staticSecrets = Object.freeze([...options.staticAuthSecrets]);
    this.secrets = this.staticSecrets;
    this.source = options.source;
    this.isRevoked = options.isRevoked;
    this.nonces = new NonceCodec(options.nonceSecret, options.staleNonceSec);
    this.dummyKey = longTermKey('', options.realm, '', 'sha256');
  }

  /** Authenticates `view` (a request from `clientAddress`:`clientPort`) at `nowSec`. Never throws. */
  authenticate(view: StunView, clientAddress: string, clientPort: number, nowSec: number): AuthResult {
    // 1. §9.2.4: no message integrity at all → challenge.
    const sha256 = view.integritySha256At >= 0;
    if (!sha256 && view.integrityAt < 0) return AUTH_FAILURES['missing-credentials'];

    // 2. Integrity without the attributes needed to check it.
    const f = this.scan(view);
    const hasUsername = f.username >= 0;
    const hasUserhash = f.userhash >= 0;
    if (hasUsername === hasUserhash || f.realm < 0 || f.nonce < 0) return AUTH_FAILURES['bad-request'];

    // 3. Realm: cheap, and says nothing about users.
    if (!view.value(f.realm).equals(this.realmBytes)) return AUTH_FAILURES['wrong-realm'];

    // 4. Nonce: ours, for this client address, not expired.
    const nonce = this.nonces.check(view.value(f.nonce), clientAddress, clientPort, nowSec);
    if (nonce === NONCE_BAD) return AUTH_FAILURES['bad-nonce'];
    if (nonce === NONCE_STALE) return AUTH_FAILURES['stale-nonce'];

    // 5. Password algorithm negotiation and bid-down protection (§9.2.4 bullet 3).
    const hasCookie = (nonce & NONCE_HAS_COOKIE) !== 0;
    let useSha256Key = false;
    if (f.algorithms >= 0 || f.algorithm >= 0) {
      if (!hasCookie || (nonce & SecurityFeature.PasswordAlgorithms) === 0) return AUTH_FAILURES['bid-down'];
      if (f.algorithms < 0 || f.algorithm < 0) return AUTH_FAILURES['bid-down'];
      if (!view.value(f.algorithms).equals(OFFERED_BYTES)) return AUTH_FAILURES['bid-down'];
      const a = view.value(f.algorithm);
      // One of our entries: a known algorithm with no parameters.
      if (a.length !== 4 || a.readUInt16BE(2) !== 0) return AUTH_FAILURES['bid-down'];
      const algorithm = a.readUInt16BE(0);
      if (algorithm === PasswordAlgorithm.SHA256) useSha256Key = true;
      else if (algorithm !== PasswordAlgorithm.MD5) return AUTH_FAILURES['bid-down'];
    }
    // else: neither attribute → MD5 (RFC 5389 clients, and RFC 8489 clients that chose not to negotiate).

    // 6. The user.
    if (hasUserhash) {
      // §9.2.5: a client uses USERHASH only when the nonce cookie offered "Username anonymity".
      const offered = hasCookie && (nonce & SecurityFeature.UsernameAnonymity) !== 0;
      const user = offered ? this.users.byHash(view.value(f.userhash)) : undefined;
      if (user === undefined) return this.unknownUser(view, sha256);
      return this.verifyStatic(view, sha256, user.name, useSha256Key ? user.sha256Key : user.md5Key);
    }
    const raw = view.value(f.username);
    if (raw.length > MAX_USERNAME_BYTES || !isUtf8(raw)) return AUTH_FAILURES['bad-request'];
    const username = raw.toString('utf8');
    const user = this.users.byName(username) ?? this.source?.user(username);
    if (user !== undefined) {
      return this.verifyStatic(view, sha256, username, useSha256Key ? user.sha256Key : user.md5Key);
    }
    if (!this.useAuthSecret) return this.unknownUser(view, sha256);
    const rest = parseRestUsername(username);
    if (rest === undefined) return this.unknownUser(view, sha256);
    if (rest.expirySec < nowSec) return AUTH_FAILURES['expired-username'];

    // 7. REST: any of the secrets may have issued the password.
    if (this.source !== undefined && this.source.version !== this.sourceVersion) this.syncSource(this.source);
    for (let s = 0; s < this.secrets.length; s++) {
      const id = `${s}${useSha256Key ? 's' : 'm'}${username}`;
      const cached = this.restKeys.get(id);
      const key =
        cached ??
        longTermKey(
          username,
          this.realm,
          restPassword(this.secrets[s]!, username),
          useSha256Key ? 'sha256' : 'md5',
        );
      if (verify(view, sha256, key)) {
        if (cached === undefined) this.cacheRestKey(id, key);
        // 8. Revoked by the operator before its expiry.
        if (this.isRevoked?.(rest.userId, nowSec) === true) return AUTH_FAILURES.revoked;
        return { ok: true, username, userId: rest.userId, key, integrity: sha256 ? 'sha256' : 'sha1' };
      }
    }
    return AUTH_FAILURES['bad-integrity'];
  }

  /**
   * The same authenticator (same realm, users, secrets and nonce key: nonces it issued stay valid)
   * with `isRevoked` as its revocation check. For a caller that receives authenticators built
   * elsewhere and must add revocation to each.
   */
  withRevocation(isRevoked: (userId: string, nowSec: number) => boolean): Authenticator {
    return new Authenticator({ ...this.options, isRevoked });
  }

  /**
   * Adds REALM, a fresh NONCE (and PASSWORD-ALGORITHMS when `offerAlgorithms`) to a 401/438 error
   * response being written. With `offerAlgorithms` the nonce carries the RFC 8489 cookie with the
   * "Password algorithms" and "Username anonymity" bits; without it, it is a plain RFC 5389 nonce.
   */
  addChallenge(
    w: StunWriter,
    clientAddress: string,
    clientPort: number,
    nowSec: number,
    offerAlgorithms: boolean,
  ): void {
    w.addBytes(AttrType.Realm, this.realmBytes);
    w.addBytes(
      AttrType.Nonce,
      this.nonces.issue(clientAddress, clientPort, nowSec, offerAlgorithms ? OFFERED_FEATURES : null),
    );
    if (offerAlgorithms) w.addBytes(AttrType.PasswordAlgorithms, OFFERED_BYTES);
  }

  /** Adds MESSAGE-INTEGRITY or MESSAGE-INTEGRITY-SHA256 (whichever the request used) to a success/error response. */
  sign(w: StunWriter, auth: AuthSuccess): void {
    if (auth.integrity === 'sha256') w.addMessageIntegritySha256(auth.key);
    else w.addMessageIntegrity(auth.key);
  }

  private verifyStatic(
    view: StunView,
    sha256: boolean,
    username: string,
    key: Buffer | undefined,
  ): AuthResult {
    if (key === undefined) return AUTH_FAILURES['unsupported-algorithm'];
    if (!verify(view, sha256, key)) return AUTH_FAILURES['bad-integrity'];
    return { ok: true, username, userId: username, key, integrity: sha256 ? 'sha256' : 'sha1' };
  }

  /**
   * Keeps a verified REST key: later requests with the same username (Allocate, permissions,
   * channels, a Refresh every few minutes) skip both digests, and reuse the key's precomputed HMAC
   * state (integrity.ts keeps those per key Buffer). Only keys that verified are kept, so requests
   * with made-up usernames cannot push real ones out. Bounded; past the bound, the oldest eighth goes
   * at once (fifo-trim.ts). The cache lives as long as this authenticator (a reload with new secrets
   * builds a new one).
   */
  private cacheRestKey(id: string, key: Buffer): void {
    this.restKeys.set(id, key);
    trimOldest(this.restKeys, REST_KEY_CACHE);
  }

  /** The source's secrets changed: the secret list is rebuilt and the REST keys cached under the old one dropped. */
  private syncSource(source: CredentialSource): void {
    this.sourceVersion = source.version;
    this.secrets = Object.freeze([...this.staticSecrets, ...source.secrets]);
    this.restKeys.clear();
  }

  private unknownUser(view: StunView, sha256: boolean): AuthFailure {
    verify(view, sha256, this.dummyKey);
    return AUTH_FAILURES['unknown-user'];
  }

  /** First index of each attribute the checks use, in one pass over the view. */
  private scan(view: StunView): Found {
    const f = this.found;
    f.username = -1;
    f.userhash = -1;
    f.realm = -1;
    f.nonce = -1;
    f.algorithms = -1;
    f.algorithm = -1;
    for (let i = 0; i < view.attrCount; i++) {
      switch (view.attrType[i]) {
        case AttrType.Username:
          if (f.username < 0) f.username = i;
          break;
        case AttrType.Userhash:
          if (f.userhash < 0) f.userhash = i;
          break;
        case AttrType.Realm:
          if (f.realm < 0) f.realm = i;
          break;
        case AttrType.Nonce:
          if (f.nonce < 0) f.nonce = i;
          break;
        case AttrType.PasswordAlgorithms:
          if (f.algorithms < 0) f.algorithms = i;
          break;
        case AttrType.PasswordAlgorithm:
          if (f.algorithm < 0) f.algorithm = i;
          break;
      }
    }
    return f;
  }
}

/** §9.2.4 bullet 5: MESSAGE-INTEGRITY-SHA256 when present, else MESSAGE-INTEGRITY. */
function verify(view: StunView, sha256: boolean, key: Buffer): boolean {
  return sha256 ? verifyMessageIntegritySha256(view, key) : verifyMessageIntegrity(view, key);
}
