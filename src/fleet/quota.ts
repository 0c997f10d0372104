/**
 * The fleet-wide per-user quota: leases in Redis, one sorted set per user id
 * (`<prefix>:quota:<userid>`), one member per allocation (`<node>/<allocation id>`) scored with the
 * lease's expiry in Redis's own clock (so the nodes' clocks never matter).
 *
 *  - Admission runs one Lua script, atomically: drop the expired leases, refuse when the user holds
 *    `limit` already, else add this allocation's lease.
 *  - The owning node renews its leases every third of the lease time (one script per user, the
 *    commands pipelined), re-adding any that Redis lost (an allocation admitted while Redis was
 *    down, under `fleet-quota-on-error: allow`, is counted once Redis is back).
 *  - A deleted allocation's lease is removed at once (retried after a reconnection when Redis was
 *    down); the leases of a node that died simply expire: their slots come back within one lease
 *    time.
 */
import { createHash } from 'node:crypto';
import type { AdmissionVerdict } from '../core/turn/admission.js';
import type { Allocation } from '../core/turn/allocation.js';
import type { Logger } from '../log.js';
import type { RedisLink } from './redis.js';

/** Redis ≥ 5 replicates scripts by effect; on older servers this call makes TIME allowed before writes. */
const PRELUDE = `if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`;

/** KEYS[1] the user's set; ARGV member, limit, lease ms. Returns 1 (admitted) or 0 (quota reached). */
export const ACQUIRE_SCRIPT = `${PRELUDE}local lease = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + lease, ARGV[1])
redis.call('PEXPIRE', KEYS[1], lease * 2)
return 1
`;

/** KEYS[1] the user's set; ARGV lease ms, then the members to renew (added when missing). */
export const RENEW_SCRIPT = `${PRELUDE}local lease = tonumber(ARGV[1])
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], now + lease, ARGV[i]) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('PEXPIRE', KEYS[1], lease * 2)
return #ARGV - 1
`;

const sha1 = (s: string): string => createHash('sha1').update(s).digest('hex');
/** EVALSHA names of the scripts, computed once. */
const SHAS: ReadonlyMap<string, string> = new Map([ACQUIRE_SCRIPT, RENEW_SCRIPT].map((s) => [s, sha1(s)]));

export interface QuotaCounters {
  admitted: number;
  refused: number;
  /** Checks Redis could not answer, by what `fleet-quota-on-error` then did. */
  errorAllowed: number;
  errorDenied: number;
}

interface Lease {
  readonly key: string;
  readonly member: string;
}

export class FleetQuota {
  private readonly redis: RedisLink;
  private readonly log: Logger;
  private readonly prefix: string;
  private readonly nodeId: string;
  /** Leases this node holds (or will re-add), by allocation id. */
  private readonly leases = new Map<number, Lease>();
  /** Leases to remove once Redis answers again. */
  private readonly releaseLater: Lease[] = [];
  readonly counters: QuotaCounters = { admitted: 0, refused: 0, errorAllowed: 0, errorDenied: 0 };

  constructor(redis: RedisLink, log: Logger, prefix: string, nodeId: string) {
    this.redis = redis;
    this.log = log;
    this.prefix = prefix;
    this.nodeId = nodeId;
    redis.onReady(() => {
      void this.loadScripts();
      void this.flushReleases();
    });
  }

  get held(): number {
    return this.leases.size;
  }

  private keyOf(userId: string): string {
    return `${this.prefix}:quota:${userId}`;
  }

  /**
   * Admits `a` against `limit` concurrent allocations of its user across the fleet; `onError` is what
   * happens when Redis cannot answer. Resolves with the verdict; never rejects.
   */
  async admit(
    a: Allocation,
    limit: number,
    leaseMs: number,
    onError: 'allow' | 'deny',
  ): Promise<AdmissionVerdict> {
    const lease: Lease = { key: this.keyOf(a.userId), member: `${this.nodeId}/${a.id}` };
    try {
      const r = await this.script(
        ACQUIRE_SCRIPT,
        [lease.key],
        [lease.member, String(limit), String(leaseMs)],
      );
      if (Number(r) === 1) {
        this.counters.admitted++;
        this.leases.set(a.id, lease);
        return 0;
      }
      this.counters.refused++;
      return 486;
    } catch (err) {
      this.redis.errors++;
      this.log.debug({ err: String(err), user: a.userId }, 'fleet: quota check failed');
      if (onError === 'deny') {
        this.counters.errorDenied++;
        return 508;
      }
      this.counters.errorAllowed++;
      // Counted in Redis at the next renewal once it is back.
      this.leases.set(a.id, lease);
      return 0;
    }
  }

  /** The allocation ended (or never started): its lease goes. */
  release(a: Allocation): void {
    const lease = this.leases.get(a.id);
    if (lease === undefined) return;
    this.leases.delete(a.id);
    void this.redis.send(['ZREM', lease.key, lease.member]).catch(() => {
      this.redis.errors++;
      this.releaseLater.push(lease);
    });
  }

  /** Renews every lease this node holds (call every third of the lease time). */
  async renew(leaseMs: number): Promise<void> {
    if (!this.redis.up || this.leases.size === 0) return;
    const byKey = new Map<string, string[]>();
    for (const l of this.leases.values()) {
      const members = byKey.get(l.key);
      if (members === undefined) byKey.set(l.key, [l.member]);
      else members.push(l.member);
    }
    await Promise.all(
      [...byKey].map(([key, members]) =>
        this.script(RENEW_SCRIPT, [key], [String(leaseMs), ...members]).catch(() => {
          this.redis.errors++;
        }),
      ),
    );
  }

  private async flushReleases(): Promise<void> {
    const pending = this.releaseLater.splice(0);
    for (const l of pending) {
      if ((await this.redis.tryCommand(['ZREM', l.key, l.member], 'release lease')) === undefined)
        this.releaseLater.push(l);
    }
  }

  private async loadScripts(): Promise<void> {
    for (const s of [ACQUIRE_SCRIPT, RENEW_SCRIPT])
      await this.redis.tryCommand(['SCRIPT', 'LOAD', s], 'script load');
  }

  /** EVALSHA, falling back to EVAL when the script cache was flushed (a Redis restart). */
  private async script(source: string, keys: string[], args: string[]): Promise<unknown> {
    const tail = [String(keys.length), ...keys, ...args];
    try {
      return await this.redis.command(['EVALSHA', SHAS.get(source) ?? sha1(source), ...tail]);
    } catch (err) {
      if (!String(err).includes('NOSCRIPT')) throw err;
      return this.redis.command(['EVAL', source, ...tail]);
    }
  }
}
