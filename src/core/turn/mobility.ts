/**
 * RFC 8016 mobility: the MOBILITY-TICKET the server hands a mobile allocation's client, and the
 * index of mobile allocations the ticket leads back to. A Refresh carrying a valid ticket from a
 * new 5-tuple moves the allocation there (`handlers/refresh.ts`).
 *
 * The ticket is opaque to the client (RFC 8016 §3.1) and authenticated, never guessable: 24 bytes
 *
 * ```
 *   bytes 0..3     allocation id, uint32 (the low 32 bits: ids are never that far apart while alive)
 *   bytes 4..7     generation, uint32: random, drawn again at every move of the allocation
 *   bytes 8..11    expiry, unix seconds, uint32 (the allocation's expiry when the ticket was issued)
 *   bytes 12..23   HMAC-SHA256(key, "turnpike-mobility-1" ‖ bytes 0..11 ‖ USERNAME), first 96 bits
 * ```
 *
 * sent as their base64url text (RFC 4648 §5, 32 characters). Text, because coturn's
 * turnutils_uclient handles the ticket as a C string (a NUL byte would cut it) in a 33-byte buffer.
 * The MAC's label names the format, so a later layout cannot be mistaken for this one; 96 bits of
 * MAC leave an online forger (one guess per authenticated request) no chance.
 *
 * The key is 32 random bytes per process: a ticket is only good on the node holding its allocation
 * (in fleet mode too), and a restart (which loses the allocations anyway) voids every ticket. The
 * MAC covers the allocation's USERNAME, so a ticket moves nothing for other credentials. A move
 * draws a new generation, so every ticket issued before it — the one just used included — is
 * refused afterwards: a replayed or captured ticket cannot move the allocation back.
 */
import { createHmac, randomBytes, randomInt, timingSafeEqual } from 'node:crypto';
import type { Allocation } from './allocation.js';

/** Length of a ticket on the wire (base64url text of RAW_LENGTH bytes). */
export const TICKET_LENGTH = 32;
const RAW_LENGTH = 24;
const BODY_LENGTH = 12;
const MAC_LABEL = 'turnpike-mobility-1';
const MAC_LENGTH = 12;
const UINT32_SPAN = 2 ** 32;
const BASE64URL = /^[A-Za-z0-9_-]{32}$/;

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
  /** Not a ticket of this server: wrong length, MAC mismatch (forged, other user, other node). */
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
    const g = randomInt(1, UINT32_SPAN);
    if (g !== previous) return g;
  }
}

/** Mints and checks tickets, and finds a ticket's allocation. */
export class TicketBook {
  private readonly key: Buffer;
  /** Mobile allocations by the low 32 bits of their id (live ones: added at activation, removed at deletion). */
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
    this.byId.set(a.id % UINT32_SPAN, a);
  }

  remove(a: Allocation): void {
    const key = a.id % UINT32_SPAN;
    if (this.byId.get(key) === a) this.byId.delete(key);
  }

  /** A ticket for `a` as it is now (its id, generation, expiry and USERNAME). */
  mint(a: Allocation): Buffer {
    const t = Buffer.alloc(RAW_LENGTH);
    t.writeUInt32BE(a.id % UINT32_SPAN, 0);
    t.writeUInt32BE(a.mobilityGeneration >>> 0, 4);
    t.writeUInt32BE(a.expiresAtSec >>> 0, 8);
    this.mac(t.subarray(0, BODY_LENGTH), a.username).copy(t, BODY_LENGTH, 0, MAC_LENGTH);
    return Buffer.from(t.toString('base64url'), 'latin1');
  }

  /**
   * The fields of `ticket` when it is one of ours for `username` (length and MAC checked,
   * in constant time), else undefined. Whether it is still good (generation, expiry) is the
   * caller's check against the allocation.
   */
  open(ticket: Uint8Array, username: string): TicketFields | undefined {
    if (ticket.length !== TICKET_LENGTH) return undefined;
    const text = Buffer.from(ticket.buffer, ticket.byteOffset, ticket.length).toString('latin1');
    if (!BASE64URL.test(text)) return undefined;
    const t = Buffer.from(text, 'base64url');
    // 32 characters carry 24 bytes; the last one's spare bits must be zero (one text per ticket).
    if (t.length !== RAW_LENGTH || t.toString('base64url') !== text) return undefined;
    const expected = this.mac(t.subarray(0, BODY_LENGTH), username).subarray(0, MAC_LENGTH);
    if (!timingSafeEqual(expected, t.subarray(BODY_LENGTH))) return undefined;
    return {
      allocationId: t.readUInt32BE(0),
      generation: t.readUInt32BE(4),
      expiresAtSec: t.readUInt32BE(8),
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
    return createHmac('sha256', this.key).update(MAC_LABEL).update(body).update(username, 'utf8').digest();
  }
}
