/**
 * RFC 8016 mobility: the MOBILITY-TICKET the server hands a mobile allocation's client, and the
 * index of mobile allocations the ticket leads back to. A Refresh carrying a valid ticket from a
 * new 5-tuple moves the allocation there (`handlers/refresh.ts`).
 *
 * The ticket is opaque to the client (RFC 8016 §3.1) and authenticated, never guessable:
 *
 * ```
 *   byte  0        version (1)
 *   bytes 1..6     allocation id, uint48
 *   bytes 7..12    generation, uint48: random, drawn again at every move of the allocation
 *   bytes 13..16   expiry, unix seconds, uint32 (the allocation's expiry when the ticket was issued)
 *   bytes 17..32   HMAC-SHA256(key, bytes 0..16 ‖ USERNAME) truncated to 128 bits
 * ```
 *
 * The key is 32 random bytes per process: a ticket is only good on the node holding its allocation
 * (in fleet mode too), and a restart (which loses the allocations anyway) voids every ticket. The
 * MAC covers the allocation's USERNAME, so a ticket moves nothing for other credentials. A move
 * draws a new generation, so every ticket issued before it — the one just used included — is
 * refused afterwards: a replayed or captured ticket cannot move the allocation back.
 */
import { createHmac, randomBytes, randomInt, timingSafeEqual } from 'node:crypto';
import type { Allocation } from './allocation.js';

export const TICKET_VERSION = 1;
export const TICKET_LENGTH = 33;
const BODY_LENGTH = 17;
const MAC_LENGTH = 16;
const UINT48_SPAN = 2 ** 48;

/** The fields of a ticket whose MAC has not been checked yet (`TicketBook.open`). */
export interface TicketFields {
  readonly allocationId: number;
  readonly generation: number;
  readonly expiresAtSec: number;
}

/** Why a ticket was refused (the label of `turn_mobility_refused_total`). */
export type TicketRefusal =
  /** `mobility` is off. */
  | 'disabled'
  /** Not a ticket of this server: wrong length or version, MAC mismatch (forged, other user, other node). */
  | 'invalid'
  /** Its allocation is gone, or moved since the ticket was issued (a replay). */
  | 'stale'
  /** Past its expiry. */
  | 'expired'
  /** From another transport than the allocation's (UDP to TCP…), or a client the data plane cannot serve. */
  | 'transport';

/** A fresh generation: random, non-zero (0 marks an allocation that is not mobile), not `previous`. */
export function newGeneration(previous = 0): number {
  for (;;) {
    const g = randomInt(1, UINT48_SPAN - 1);
    if (g !== previous) return g;
  }
}

/** Mints and checks tickets, and finds a ticket's allocation. */
export class TicketBook {
  private readonly key: Buffer;
  /** Mobile allocations by id (live ones: added at activation, removed at deletion). */
  private readonly byId = new Map<number, Allocation>();

  /** `key`: at least 32 bytes; default: random (tests pass their own). */
  constructor(key: Buffer = randomBytes(32)) {
    if (key.length < 32) throw new RangeError('mobility ticket key: at least 32 bytes');
    this.key = Buffer.from(key);
  }

  get size(): number {
    return this.byId.size;
  }

  /** `a` is mobile and live: tickets can find it. */
  add(a: Allocation): void {
    this.byId.set(a.id, a);
  }

  remove(a: Allocation): void {
    if (this.byId.get(a.id) === a) this.byId.delete(a.id);
  }

  find(id: number): Allocation | undefined {
    return this.byId.get(id);
  }

  /** A ticket for `a` as it is now (its id, generation, expiry and USERNAME). */
  mint(a: Allocation): Buffer {
    const t = Buffer.alloc(TICKET_LENGTH);
    t[0] = TICKET_VERSION;
    t.writeUIntBE(a.id % UINT48_SPAN, 1, 6);
    t.writeUIntBE(a.mobilityGeneration, 7, 6);
    t.writeUInt32BE(a.expiresAtSec >>> 0, 13);
    this.mac(t.subarray(0, BODY_LENGTH), a.username).copy(t, BODY_LENGTH, 0, MAC_LENGTH);
    return t;
  }

  /**
   * The fields of `ticket` when it is one of ours for `username` (length, version and MAC checked,
   * in constant time), else undefined. Whether it is still good (generation, expiry) is the
   * caller's check against the allocation.
   */
  open(ticket: Uint8Array, username: string): TicketFields | undefined {
    if (ticket.length !== TICKET_LENGTH || ticket[0] !== TICKET_VERSION) return undefined;
    const t = Buffer.from(ticket.buffer, ticket.byteOffset, ticket.length);
    const expected = this.mac(t.subarray(0, BODY_LENGTH), username).subarray(0, MAC_LENGTH);
    if (!timingSafeEqual(expected, t.subarray(BODY_LENGTH))) return undefined;
    return {
      allocationId: t.readUIntBE(1, 6),
      generation: t.readUIntBE(7, 6),
      expiresAtSec: t.readUInt32BE(13),
    };
  }

  /**
   * The allocation `ticket` moves for `username` at `nowSec`, or why it moves nothing. The MAC is
   * checked first, so a forged ticket learns nothing about which allocations exist.
   */
  check(ticket: Uint8Array, username: string, nowSec: number): Allocation | TicketRefusal {
    const f = this.open(ticket, username);
    if (f === undefined) return 'invalid';
    if (f.expiresAtSec <= nowSec) return 'expired';
    const a = this.byId.get(f.allocationId);
    if (a === undefined || a.deleted || a.pending || a.mobilityGeneration !== f.generation) return 'stale';
    return a;
  }

  private mac(body: Buffer, username: string): Buffer {
    return createHmac('sha256', this.key).update(body).update(username, 'utf8').digest();
  }
}
