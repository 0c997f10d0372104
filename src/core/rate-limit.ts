/**
 * Per-source-IP token buckets for error responses to unauthenticated requests (401, 438, 400,
 * 420), so that spoofed requests cannot turn the server into a reflector: whatever rate an
 * attacker sends from a victim's address, the victim receives at most `ratePerSec` answers per
 * second after a burst of `2 × ratePerSec`.
 *
 * Memory is bounded by construction: a fixed table of buckets indexed by a hash of the IP text
 * (FNV-1a). Two addresses that collide share a budget, which can only make the limit stricter.
 * Floods from many source ports of one address share one bucket.
 */
const TABLE_BITS = 16;
const TABLE_SIZE = 1 << TABLE_BITS;

export class SourceRateLimiter {
  private ratePerSec: number;
  private burst: number;
  private readonly tokens = new Float64Array(TABLE_SIZE);
  private readonly updatedAtMs = new Float64Array(TABLE_SIZE);
  /** Responses refused so far. */
  limited = 0;

  /** `ratePerSec` 0 disables the limit. */
  constructor(ratePerSec: number) {
    this.ratePerSec = ratePerSec;
    this.burst = ratePerSec * 2;
  }

  setRate(ratePerSec: number): void {
    this.ratePerSec = ratePerSec;
    this.burst = ratePerSec * 2;
  }

  /** Takes one token for `address` at `nowMs`; false means: do not answer. */
  take(address: string, nowMs: number): boolean {
    if (this.ratePerSec === 0) return true;
    let h = 0x811c9dc5;
    for (let i = 0; i < address.length; i++) h = Math.imul(h ^ address.charCodeAt(i), 0x01000193);
    const slot = (h >>> 0) & (TABLE_SIZE - 1);
    const last = this.updatedAtMs[slot]!;
    // An untouched slot (0) starts full.
    let tokens = last === 0 ? this.burst : this.tokens[slot]! + ((nowMs - last) / 1000) * this.ratePerSec;
    if (tokens > this.burst) tokens = this.burst;
    this.updatedAtMs[slot] = nowMs === 0 ? 1 : nowMs;
    if (tokens < 1) {
      this.tokens[slot] = tokens;
      this.limited++;
      return false;
    }
    this.tokens[slot] = tokens - 1;
    return true;
  }
}
