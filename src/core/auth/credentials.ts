/**
 * Static long-term credentials (RFC 8489 §9.2.2) configured as `name:password` or
 * `name:0x<32 hex digits>` (the MD5 key itself, MD5(name:realm:password), as coturn's `user=`
 * accepts). Keys are derived once here; USERHASH values (§14.3) are precomputed so an anonymous
 * request is a single map lookup.
 */
import { createHash } from 'node:crypto';
import { longTermKey } from '../stun/integrity.js';

/** One configured user with the keys it can authenticate with. */
export interface StaticUser {
  readonly name: string;
  /** MD5(name:realm:password): PASSWORD-ALGORITHM MD5, or no algorithm (RFC 5389 clients). */
  readonly md5Key: Buffer;
  /** SHA-256(name:realm:password); undefined when only the MD5 key was configured. */
  readonly sha256Key: Buffer | undefined;
}

const HEX_KEY = /^0x[0-9a-fA-F]{32}$/;

/** USERHASH (RFC 8489 §14.3): SHA-256(username ":" realm), 32 bytes. */
export function userHash(username: string, realm: string): Buffer {
  return createHash('sha256').update(`${username}:${realm}`, 'utf8').digest();
}

/**
 * Parses one `name:password` / `name:0x<hex>` entry. The name ends at the FIRST colon, so passwords
 * may contain colons. Throws TypeError on an entry without a colon or with an empty name; the
 * message names the entry's position, never its text (it holds a secret).
 */
export function parseStaticUser(entry: string, realm: string, index = 0): StaticUser {
  const colon = entry.indexOf(':');
  if (colon <= 0) throw new TypeError(`user entry #${index} is not "name:password" or "name:0x<md5 key>"`);
  const name = entry.slice(0, colon);
  const secret = entry.slice(colon + 1);
  if (HEX_KEY.test(secret)) {
    return { name, md5Key: Buffer.from(secret.slice(2), 'hex'), sha256Key: undefined };
  }
  return {
    name,
    md5Key: longTermKey(name, realm, secret, 'md5'),
    sha256Key: longTermKey(name, realm, secret, 'sha256'),
  };
}

/** The configured users by name and by USERHASH. A later entry with the same name replaces an earlier one. */
export class StaticUsers {
  private readonly byNameMap = new Map<string, StaticUser>();
  /** Keyed by the 32 USERHASH bytes as a latin1 string (one byte per char, no hex formatting). */
  private readonly byHashMap = new Map<string, StaticUser>();

  constructor(entries: readonly string[], realm: string) {
    for (let i = 0; i < entries.length; i++) {
      const user = parseStaticUser(entries[i]!, realm, i);
      this.byNameMap.set(user.name, user);
    }
    for (const user of this.byNameMap.values()) {
      this.byHashMap.set(userHash(user.name, realm).toString('latin1'), user);
    }
  }

  get size(): number {
    return this.byNameMap.size;
  }

  byName(name: string): StaticUser | undefined {
    return this.byNameMap.get(name);
  }

  /** The user whose USERHASH is `hash` (a 32-byte attribute value), if any. */
  byHash(hash: Buffer): StaticUser | undefined {
    return hash.length === 32 ? this.byHashMap.get(hash.toString('latin1')) : undefined;
  }
}

/**
 * Credentials kept outside the configuration (fleet mode: a user database in Redis, replicated in
 * memory), consulted after the configured ones. Synchronous and cheap: it runs on the request path.
 */
export interface CredentialSource {
  /** The user of that name, or undefined (configured users are looked up first). */
  user(name: string): StaticUser | undefined;
  /** TURN REST secrets beyond `static-auth-secret` (used only with use-auth-secret). */
  readonly secrets: readonly string[];
  /** Changes whenever `secrets` or any user changes (cached REST keys are dropped then). */
  readonly version: number;
}
