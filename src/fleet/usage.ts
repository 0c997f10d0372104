/**
 * Usage records to a Redis Stream (`<prefix>:usage`, trimmed to about `fleet-usage-stream-max`
 * entries): one `stop` record when an allocation ends, `interim` records every
 * `fleet-usage-interim` seconds while it lives (see `core/fleet/usage.ts` for the fields).
 * Consumers read it with XREAD or a consumer group (XREADGROUP), for billing and analytics.
 *
 * Records go through a bounded buffer (`fleet-usage-buffer`): they are written in batches (one
 * pipelined XADD each) and removed only once Redis has taken them, so while Redis is unreachable
 * they wait, and are written when it is back. Past the bound the oldest are dropped; drops are
 * counted (`turn_fleet_usage_records_dropped_total`) and logged.
 */
import { UsageBuffer, type UsageKind, type UsageRecord, usageRecord } from '../core/fleet/usage.js';
import type { Allocation } from '../core/turn/allocation.js';
import type { TurnEventBus } from '../core/turn/events.js';
import type { ForwardingTable } from '../core/turn/forwarding.js';
import type { Logger } from '../log.js';
import type { RedisLink } from './redis.js';
import { HEARTBEAT_MS } from './registry.js';

/** Records per write. */
const BATCH = 200;

export class FleetUsage {
  private readonly redis: RedisLink;
  private readonly plane: ForwardingTable;
  private readonly log: Logger;
  private readonly key: string;
  private readonly nodeId: string;
  private readonly nowMs: () => number;
  private readonly interimMs: () => number;
  private readonly streamMax: number;
  readonly buffer: UsageBuffer;
  /** Live allocations with the time of their last record. */
  private readonly live = new Map<Allocation, { seq: number; lastMs: number }>();
  private flushing: Promise<void> | undefined;
  private droppedLogged = 0;
  /** Records Redis has taken. */
  written = 0;

  constructor(o: {
    redis: RedisLink;
    events: TurnEventBus;
    plane: ForwardingTable;
    log: Logger;
    prefix: string;
    nodeId: string;
    nowMs: () => number;
    interimMs: () => number;
    capacity: number;
    streamMax: number;
  }) {
    this.redis = o.redis;
    this.plane = o.plane;
    this.log = o.log;
    this.key = `${o.prefix}:usage`;
    this.nodeId = o.nodeId;
    this.nowMs = o.nowMs;
    this.interimMs = o.interimMs;
    this.streamMax = o.streamMax;
    this.buffer = new UsageBuffer(o.capacity);
    o.events.subscribe({
      allocationCreated: (a) => {
        this.live.set(a, { seq: 0, lastMs: this.nowMs() });
      },
      allocationDeleted: (a, reason) => {
        const state = this.live.get(a);
        this.live.delete(a);
        this.record('stop', a, state === undefined ? 0 : state.seq + 1, reason);
      },
    });
    o.redis.onReady(() => void this.flush());
  }

  /** Stream key, for `GET /admin/fleet`. */
  get stream(): string {
    return this.key;
  }

  private record(kind: UsageKind, a: Allocation, seq: number, reason = ''): void {
    this.buffer.push(usageRecord(kind, this.nodeId, a, this.plane.counters(a), seq, this.nowMs(), reason));
  }

  /** Once a second: interim records that are due, then a write of what waits. */
  tick(): void {
    const every = this.interimMs();
    if (every > 0) {
      const now = this.nowMs();
      // Half a tick of slack: tick runs with the heartbeat, about once a second, so an allocation due at 1000 ms
      // that is looked at after 999 would otherwise wait a whole extra tick.
      const due = every - HEARTBEAT_MS / 2;
      for (const [a, state] of this.live) {
        if (now - state.lastMs < due) continue;
        state.seq++;
        state.lastMs = now;
        this.record('interim', a, state.seq);
      }
    }
    void this.flush();
  }

  /** Writes buffered records while Redis takes them; one writer at a time. */
  flush(): Promise<void> {
    this.flushing ??= this.drain().finally(() => {
      this.flushing = undefined;
    });
    return this.flushing;
  }

  private async drain(): Promise<void> {
    this.logDrops();
    while (this.redis.up && this.buffer.size > 0) {
      const batch = this.buffer.peek(BATCH);
      try {
        await this.redis.commands(batch.map((r) => this.xadd(r)));
      } catch (err) {
        this.redis.errors++;
        this.log.debug(
          { err: String(err), buffered: this.buffer.size },
          'fleet: writing usage records failed',
        );
        return;
      }
      this.buffer.consume(batch);
      this.written += batch.length;
    }
  }

  private xadd(r: UsageRecord): string[] {
    const args = ['XADD', this.key, 'MAXLEN', '~', String(this.streamMax), '*'];
    for (const k in r) args.push(k, r[k]!);
    return args;
  }

  private logDrops(): void {
    const dropped = this.buffer.dropped;
    if (dropped === this.droppedLogged) return;
    this.log.warn(
      { dropped: dropped - this.droppedLogged, total: dropped, capacity: this.buffer.capacity },
      'fleet: usage records dropped (the buffer is full while Redis is unreachable)',
    );
    this.droppedLogged = dropped;
  }
}
