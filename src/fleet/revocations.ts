/**
 * Revocations shared by the fleet. A revocation made through any node's admin API is written to a
 * hash (`<prefix>:revocations`, user id → until, unix seconds) and published on the channel of the
 * same name; every node applies what it hears to its local `RevocationList` (which the
 * authenticator consults synchronously on every request) and deletes the user id's live REST
 * allocations. Pub/sub delivers in milliseconds; at every (re)connection and every 5 s a node also
 * reads the whole hash, so one that missed a message (Redis restarted, a partition) converges.
 * Revocations made while Redis was unreachable are written once it is back.
 */
import type { RevocationList } from '../credentials.js';
import type { Logger } from '../log.js';
import type { RedisLink } from './redis.js';

/** Seconds after a change is written during which a read of the hash does not undo it here. */
const RECENT_SEC = 10;

/** A revocation message on the channel. */
interface Message {
  readonly op: 'revoke' | 'unrevoke';
  readonly userid: string;
  readonly until: number;
}

function parseMessage(text: string): Message | undefined {
  try {
    const m = JSON.parse(text) as Partial<Message>;
    if ((m.op === 'revoke' || m.op === 'unrevoke') && typeof m.userid === 'string' && m.userid !== '')
      return { op: m.op, userid: m.userid, until: typeof m.until === 'number' ? m.until : 0 };
  } catch {
    // not ours
  }
  return undefined;
}

export class FleetRevocations {
  private readonly redis: RedisLink;
  private readonly list: RevocationList;
  private readonly key: string;
  private readonly log: Logger;
  private readonly nowSec: () => number;
  /** Deletes the live REST allocations of a user id; returns how many. */
  private readonly disconnect: (userId: string) => number;
  /** Changes made while Redis was unreachable, written at the next connection. */
  private readonly unsent: Message[] = [];
  /** User ids whose change from this node is being written (a re-read must not undo it meanwhile). */
  private readonly sending = new Set<string>();
  /** When this node's last change of a user id was written: a read begun before then may miss it. */
  private readonly written = new Map<string, number>();
  /** Revocations applied from other nodes (and this one's, echoed). */
  applied = 0;

  constructor(o: {
    redis: RedisLink;
    list: RevocationList;
    prefix: string;
    log: Logger;
    nowSec: () => number;
    disconnect: (userId: string) => number;
  }) {
    this.redis = o.redis;
    this.list = o.list;
    this.key = `${o.prefix}:revocations`;
    this.log = o.log;
    this.nowSec = o.nowSec;
    this.disconnect = o.disconnect;
  }

  /** Subscribes to the channel; call once, before `start` of the link. */
  async subscribe(): Promise<void> {
    await this.redis.subscriber.subscribe(this.key, (text: string) => {
      const m = parseMessage(text);
      if (m !== undefined) this.apply(m);
    });
  }

  /** Reads the hash (after sending what waited); called at each connection and every few seconds. */
  async resync(): Promise<void> {
    if (!this.redis.up) return;
    for (const m of this.unsent.splice(0)) await this.send(m);
    // Changes this node is writing (or could not write yet), from before the read to after it, stay
    // as they are here: the read may predate them.
    const pending = this.pendingIds();
    const reply = await this.redis.tryCommand(['HGETALL', this.key], 'read revocations');
    for (const id of this.pendingIds()) pending.add(id);
    if (reply === undefined || reply === null || typeof reply !== 'object') return;
    const now = this.nowSec();
    const entries = Array.isArray(reply)
      ? pairs(reply as unknown[])
      : Object.entries(reply as Record<string, unknown>);
    const inForce = new Set<string>();
    for (const [userid, value] of entries) {
      if (pending.has(userid)) continue;
      const until = Number(value);
      if (!Number.isSafeInteger(until) || until <= now) {
        void this.redis.tryCommand(['HDEL', this.key, userid], 'prune revocation');
        continue;
      }
      inForce.add(userid);
      if (!this.list.isRevoked(userid, now)) this.apply({ op: 'revoke', userid, until });
    }
    // Lifted elsewhere while this node was not listening.
    for (const { userid } of this.list.list(now))
      if (!inForce.has(userid) && !pending.has(userid)) this.list.lift(userid);
  }

  /** User ids a read of the hash may be older than: being written, not written yet, or just written. */
  private pendingIds(): Set<string> {
    const now = this.nowSec();
    for (const [id, at] of this.written) if (now - at > RECENT_SEC) this.written.delete(id);
    return new Set([...this.sending, ...this.unsent.map((m) => m.userid), ...this.written.keys()]);
  }

  /** The admin API revoked `userid` here (already applied locally): tell the fleet. */
  revoke(userid: string, until: number): void {
    void this.send({ op: 'revoke', userid, until });
  }

  /** The admin API lifted a revocation here: tell the fleet. */
  unrevoke(userid: string): void {
    void this.send({ op: 'unrevoke', userid, until: 0 });
  }

  private async send(m: Message): Promise<void> {
    this.sending.add(m.userid);
    try {
      if (m.op === 'revoke') {
        // Never shortens a longer revocation already in the hash.
        const current = Number(await this.redis.command(['HGET', this.key, m.userid]));
        await this.redis.command(['HSET', this.key, m.userid, String(Math.max(m.until, current || 0))]);
      } else await this.redis.command(['HDEL', this.key, m.userid]);
      await this.redis.command(['PUBLISH', this.key, JSON.stringify(m)]);
      this.sending.delete(m.userid);
      this.written.set(m.userid, this.nowSec());
    } catch {
      this.sending.delete(m.userid);
      this.redis.errors++;
      this.unsent.push(m);
      this.log.warn(
        { userid: m.userid, op: m.op },
        'fleet: Redis unreachable; the revocation reaches the other nodes once it is back',
      );
    }
  }

  private apply(m: Message): void {
    const now = this.nowSec();
    if (m.op === 'unrevoke') {
      this.list.lift(m.userid);
      return;
    }
    if (m.until <= now) return;
    this.list.revoke(m.userid, m.until, now);
    this.applied++;
    const n = this.disconnect(m.userid);
    if (n > 0)
      this.log.info(
        { userid: m.userid, allocations: n },
        'fleet: revoked REST user id; its allocations here are deleted',
      );
  }
}

/** [k1, v1, k2, v2…] (RESP2 HGETALL) as pairs. */
function pairs(flat: unknown[]): Array<[string, unknown]> {
  const out: Array<[string, unknown]> = [];
  for (let i = 0; i + 1 < flat.length; i += 2) out.push([String(flat[i]), flat[i + 1]]);
  return out;
}
