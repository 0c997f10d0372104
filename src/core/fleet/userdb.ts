/**
 * coturn's Redis user database layout (coturn `turndb/schema.userdb.redis`), for one realm R:
 *
 *   turn/realm/R/user/<name>/key       the long-term key, hex MD5(name:R:password) (32 digits)
 *   turn/realm/R/user/<name>/password  or the password in clear text
 *   turn/realm/R/secret/<any id>       a TURN REST shared secret (several may exist)
 *   turn/realm/R/user-quota            concurrent allocations per user
 *   turn/realm/R/total-quota           concurrent allocations per server
 *   turn/realm/R/max-bps               bandwidth per allocation (read and shown; not applied)
 *
 * Pure: the shell scans the keys and hands their values in; this turns them into the users,
 * secrets and quotas of a `UserDbSnapshot`. Values that are not what the layout says are skipped
 * and counted (never thrown).
 */
import { parseStaticUser, type StaticUser } from '../auth/credentials.js';

export interface UserDbSnapshot {
  readonly users: ReadonlyMap<string, StaticUser>;
  /** Secrets, ordered by their key (stable across reads, so equal snapshots compare equal). */
  readonly secrets: readonly string[];
  readonly userQuota: number | undefined;
  readonly totalQuota: number | undefined;
  readonly maxBps: number | undefined;
  /** Keys under the realm that were skipped (unknown shape or bad value). */
  readonly skipped: number;
}

/** The key prefix of realm `realm`. */
export function realmPrefix(realm: string): string {
  return `turn/realm/${realm}/`;
}

/** A SCAN/PSUBSCRIBE pattern matching every key of `realm` (glob characters in the realm escaped). */
export function realmPattern(realm: string): string {
  return `${realmPrefix(realm).replace(/[*?[\]\\]/g, (c) => `\\${c}`)}*`;
}

const HEX_KEY = /^[0-9a-fA-F]{32}$/;

function quota(value: string): number | undefined {
  return /^\d{1,10}$/.test(value.trim()) ? Number(value.trim()) : undefined;
}

/** Builds the snapshot of `realm` from its keys and their values (null: the key vanished). */
export function parseUserDb(
  realm: string,
  entries: Iterable<readonly [string, string | null]>,
): UserDbSnapshot {
  const prefix = realmPrefix(realm);
  const keys = new Map<string, string>();
  const passwords = new Map<string, string>();
  const secrets: Array<[string, string]> = [];
  let userQuota: number | undefined;
  let totalQuota: number | undefined;
  let maxBps: number | undefined;
  let skipped = 0;
  for (const [key, value] of entries) {
    if (value === null || !key.startsWith(prefix)) continue;
    const rest = key.slice(prefix.length);
    if (rest.startsWith('user/') && rest.endsWith('/key') && rest.length > 9) {
      const name = rest.slice(5, -4);
      if (HEX_KEY.test(value)) keys.set(name, value);
      else skipped++;
    } else if (rest.startsWith('user/') && rest.endsWith('/password') && rest.length > 14) {
      const name = rest.slice(5, -9);
      if (value !== '') passwords.set(name, value);
      else skipped++;
    } else if (rest.startsWith('secret/')) {
      if (value !== '') secrets.push([rest, value]);
      else skipped++;
    } else if (rest === 'user-quota') userQuota = quota(value);
    else if (rest === 'total-quota') totalQuota = quota(value);
    else if (rest === 'max-bps') maxBps = quota(value);
    else skipped++;
  }
  const users = new Map<string, StaticUser>();
  // A clear-text password gives both keys (MD5 and SHA-256); when both exist, the stored key wins
  // for MD5, as coturn reads the key first.
  for (const [name, password] of passwords) users.set(name, parseStaticUser(`${name}:${password}`, realm));
  for (const [name, hex] of keys) {
    const fromPassword = users.get(name);
    const md5Key = Buffer.from(hex, 'hex');
    users.set(name, {
      name,
      md5Key,
      sha256Key: fromPassword?.md5Key.equals(md5Key) === true ? fromPassword.sha256Key : undefined,
    });
  }
  secrets.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return { users, secrets: secrets.map((s) => s[1]), userQuota, totalQuota, maxBps, skipped };
}

/** Whether two snapshots authenticate the same way (same users with the same keys, same secrets). */
export function sameCredentials(a: UserDbSnapshot, b: UserDbSnapshot): boolean {
  if (a.users.size !== b.users.size || a.secrets.length !== b.secrets.length) return false;
  for (let i = 0; i < a.secrets.length; i++) if (a.secrets[i] !== b.secrets[i]) return false;
  for (const [name, u] of a.users) {
    const v = b.users.get(name);
    if (v === undefined || !v.md5Key.equals(u.md5Key)) return false;
    if ((u.sha256Key === undefined) !== (v.sha256Key === undefined)) return false;
    if (u.sha256Key !== undefined && v.sha256Key !== undefined && !u.sha256Key.equals(v.sha256Key))
      return false;
  }
  return true;
}

/** An empty snapshot (before the first read). */
export const EMPTY_USERDB: UserDbSnapshot = Object.freeze({
  users: new Map<string, StaticUser>(),
  secrets: [],
  userQuota: undefined,
  totalQuota: undefined,
  maxBps: undefined,
  skipped: 0,
});
