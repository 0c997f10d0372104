/**
 * Responses to authenticated Allocate and Refresh requests, kept for the retransmission window (RFC 8489 §6.3.1:
 * a retransmitted request gets the same answer). Keyed by client transport address and
 * transaction ID, so a Refresh with LIFETIME 0 retransmitted after the allocation is gone still gets
 * its success, not a 437. Bounded: at most `capacity` entries, each kept `ttlSec` (the last
 * retransmission of RFC 8489's default schedule comes 39.5 s after the first try).
 */
import { trimOldest } from '../fifo-trim.js';

export class ResponseCache {
  private readonly capacity: number;
  private readonly ttlSec: number;
  private readonly entries = new Map<string, { readonly response: Buffer; readonly expiresAtSec: number }>();

  constructor(capacity = 8192, ttlSec = 40) {
    this.capacity = capacity;
    this.ttlSec = ttlSec;
  }

  static key(transport: string, address: string, port: number, request: Buffer): string {
    // The transaction ID as 12 latin1 characters: one per byte, half the length of hex.
    return `${transport}|${address}|${port}|${request.toString('latin1', 8, 20)}`;
  }

  get(key: string, nowSec: number): Buffer | undefined {
    const e = this.entries.get(key);
    if (e === undefined) return undefined;
    if (e.expiresAtSec <= nowSec) {
      this.entries.delete(key);
      return undefined;
    }
    return e.response;
  }

  /** Past `capacity`, the oldest eighth goes at once (fifo-trim.ts: one walk per capacity/8 sets). */
  set(key: string, response: Buffer, nowSec: number): void {
    this.entries.delete(key);
    this.entries.set(key, { response, expiresAtSec: nowSec + this.ttlSec });
    trimOldest(this.entries, this.capacity);
  }

  /** Drops expired entries (periodic sweep). */
  prune(nowSec: number): void {
    for (const [k, e] of this.entries) {
      if (e.expiresAtSec > nowSec) break; // insertion order ≈ expiry order
      this.entries.delete(k);
    }
  }

  get size(): number {
    return this.entries.size;
  }
}
