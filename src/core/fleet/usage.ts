/**
 * Usage accounting records (what managed TURN services bill on) and the bounded buffer that holds
 * them while the store is unreachable. Pure: the shell (`src/fleet/usage.ts`) writes the records to
 * a Redis Stream.
 *
 * One `stop` record per allocation when it ends, and `interim` records every N seconds while it
 * lives; each carries the totals so far (not deltas), so a consumer that misses an interim record
 * loses nothing, and `seq` with the node and allocation ids makes a record written twice (a retry
 * after a write whose answer was lost) recognisable.
 */
import { parseRestUsername } from '../auth/rest-secret.js';
import type { Allocation } from '../turn/allocation.js';
import type { AllocationCounters } from '../turn/forwarding.js';

export type UsageKind = 'interim' | 'stop';

/** One record, as flat string fields (the shape of a stream entry). */
export type UsageRecord = Readonly<Record<string, string>>;

/** `host:port`, IPv6 in brackets. */
function endpoint(address: string, port: number): string {
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}

/**
 * The record of allocation `a` at `nowMs`: `user` (the USERNAME), `userid` (the quota key), `tag`
 * (after '#' in a REST username; empty when none), the client and relay addresses, start and
 * (for `stop`) end in unix ms, packets and bytes each way, and packets the relay limits dropped.
 */
export function usageRecord(
  kind: UsageKind,
  node: string,
  a: Allocation,
  c: AllocationCounters,
  seq: number,
  nowMs: number,
  reason = '',
): UsageRecord {
  const rest = parseRestUsername(a.username);
  return {
    kind,
    node,
    alloc: String(a.id),
    seq: String(seq),
    user: a.username,
    userid: a.userId,
    tag: rest?.tag ?? '',
    transport: a.endpoint.transport,
    client: endpoint(a.clientAddress, a.clientPort),
    relay: a.relays.map((r) => endpoint(r.advertisedAddress, r.port)).join(','),
    start: String(a.createdAtSec * 1000),
    end: kind === 'stop' ? String(nowMs) : '',
    reason,
    packetsToPeer: String(c.packetsToPeer),
    bytesToPeer: String(c.bytesToPeer),
    packetsToClient: String(c.packetsToClient),
    bytesToClient: String(c.bytesToClient),
    droppedPayloadPolicy: String(c.payloadRefused),
    droppedBandwidth: String(c.bandwidthDropped),
  };
}

/**
 * A FIFO of records bounded to `capacity`: pushing onto a full buffer drops the oldest record and
 * counts it. `peek`/`consume` let the writer remove records only once they are written.
 */
export class UsageBuffer {
  private items: UsageRecord[] = [];
  private head = 0;
  /** Records dropped because the buffer was full. */
  dropped = 0;
  capacity: number;

  constructor(capacity: number) {
    this.capacity = capacity;
  }

  get size(): number {
    return this.items.length - this.head;
  }

  push(r: UsageRecord): void {
    if (this.size >= this.capacity) {
      this.head++;
      this.dropped++;
    }
    this.items.push(r);
    // Compact now and then: the dead prefix never exceeds the live part.
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }

  /** Up to `n` oldest records, without removing them. */
  peek(n: number): UsageRecord[] {
    return this.items.slice(this.head, this.head + n);
  }

  /**
   * Removes `records` (the oldest, as `peek` gave them: they were written). Records dropped meanwhile (the buffer
   * overflowed during the write) shift the window: only what is still there is removed.
   */
  consume(records: readonly UsageRecord[]): void {
    for (const r of records) if (this.size > 0 && this.items[this.head] === r) this.head++;
    if (this.size === 0) {
      this.items = [];
      this.head = 0;
    }
  }
}
