/**
 * A live replica of the coturn-layout user database in Redis (see `core/fleet/userdb.ts` for the
 * keys) for the configured realm: the authenticator reads it synchronously as its
 * `CredentialSource`. It is read in full at every connection and every `redis-userdb-poll`
 * seconds, and at once (debounced by 20 ms) when a keyspace notification names a key of the realm —
 * which Redis sends only when `notify-keyspace-events` includes K and the event classes ($ for SET,
 * g for DEL/EXPIRE; `KA` covers all). While Redis is unreachable the last replica stays in force.
 */
import type { CredentialSource, StaticUser } from '../core/auth/credentials.js';
import {
  EMPTY_USERDB,
  parseUserDb,
  realmPattern,
  sameCredentials,
  type UserDbSnapshot,
} from '../core/fleet/userdb.js';
import type { Logger } from '../log.js';
import type { RedisLink } from './redis.js';

/** Keys read per MGET. */
const BATCH = 500;

export class FleetUserDb implements CredentialSource {
  private readonly redis: RedisLink;
  private readonly realm: string;
  private readonly log: Logger;
  private snapshot: UserDbSnapshot = EMPTY_USERDB;
  private reading: Promise<void> | undefined;
  private again = false;
  private debounce: NodeJS.Timeout | undefined;
  version = 0;
  /** Full reads done. */
  reads = 0;

  constructor(redis: RedisLink, realm: string, log: Logger) {
    this.redis = redis;
    this.realm = realm;
    this.log = log;
  }

  get current(): UserDbSnapshot {
    return this.snapshot;
  }

  get secrets(): readonly string[] {
    return this.snapshot.secrets;
  }

  user(name: string): StaticUser | undefined {
    return this.snapshot.users.get(name);
  }

  /** Subscribes to keyspace notifications of the realm's keys (database `db`). */
  async subscribe(db: number): Promise<void> {
    await this.redis.subscriber.pSubscribe(`__keyspace@${db}__:${realmPattern(this.realm)}`, () => {
      if (this.debounce !== undefined) return;
      this.debounce = setTimeout(() => {
        this.debounce = undefined;
        void this.refresh();
      }, 20);
    });
  }

  /** Reads the realm's keys again; concurrent calls share one read, plus one more after it. */
  refresh(): Promise<void> {
    if (this.reading !== undefined) {
      this.again = true;
      return this.reading;
    }
    this.reading = this.read()
      .catch((err: unknown) => {
        this.redis.errors++;
        this.log.debug({ err: String(err) }, 'fleet: reading the user database failed');
      })
      .finally(() => {
        this.reading = undefined;
        if (this.again) {
          this.again = false;
          void this.refresh();
        }
      });
    return this.reading;
  }

  private async read(): Promise<void> {
    if (!this.redis.up) return;
    const keys: string[] = [];
    let cursor = '0';
    do {
      const reply = (await this.redis.command([
        'SCAN',
        cursor,
        'MATCH',
        realmPattern(this.realm),
        'COUNT',
        '1000',
      ])) as [string, string[]];
      cursor = String(reply[0]);
      keys.push(...reply[1]);
    } while (cursor !== '0');
    const entries: Array<[string, string | null]> = [];
    for (let i = 0; i < keys.length; i += BATCH) {
      const chunk = keys.slice(i, i + BATCH);
      const values = (await this.redis.command(['MGET', ...chunk])) as Array<string | null>;
      for (let k = 0; k < chunk.length; k++) entries.push([chunk[k]!, values[k] ?? null]);
    }
    const next = parseUserDb(this.realm, entries);
    this.reads++;
    const changed = !sameCredentials(this.snapshot, next);
    const quotas =
      next.userQuota !== this.snapshot.userQuota ||
      next.totalQuota !== this.snapshot.totalQuota ||
      next.maxBps !== this.snapshot.maxBps;
    this.snapshot = next;
    if (changed) this.version++;
    if (changed || quotas)
      this.log.info(
        {
          realm: this.realm,
          userCount: next.users.size,
          secrets: next.secrets.length,
          userQuota: next.userQuota,
          totalQuota: next.totalQuota,
          skipped: next.skipped,
        },
        'fleet: user database read from Redis',
      );
  }

  close(): void {
    clearTimeout(this.debounce);
  }
}
