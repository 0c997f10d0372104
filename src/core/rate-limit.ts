/**
 * The budget for error responses to unauthenticated requests (401, 438, 400, 420), so that spoofed
 * requests cannot turn the server into a reflector: whatever rate an attacker sends from a
 * victim's address, the victim receives at most `ratePerSec` answers per second after a burst of
 * `2 × ratePerSec`.
 *
 * Sources that proved they are real are exempt. Every TURN allocation starts with a 401 challenge,
 * so many real clients behind one IP (carrier-grade NAT, a corporate egress) would otherwise share
 * ten challenges a second. A source IP counts as verified once a request from it carried valid
 * MESSAGE-INTEGRITY, for `verifiedLifetimeMs` after its last such request, or while it holds a
 * live allocation. A spoofed source never receives the challenge, so it can never complete the
 * round trip and is never verified.
 *
 * Memory is bounded by construction:
 *  - buckets: a fixed table indexed by a hash of the IP text (FNV-1a). Two addresses that collide
 *    share a budget, which can only make the limit stricter. Floods from many source ports of one
 *    address share one bucket.
 *  - verified sources: a Map used as an LRU list of at most `maxVerified` entries (insertion order
 *    is recency: a touch deletes and re-inserts). A new entry beyond the cap evicts the least
 *    recently authenticated source, which is then limited again until it authenticates.
 */
const TABLE_BITS = 16;
const TABLE_SIZE = 1 << TABLE_BITS;

/** Why a response was not sent (the `reason` label of `turn_rate_limited_total`). */
export type RateLimitReason = 'challenge' | 'error';

export interface RateLimitOptions {
  /** Answers per second per source IP; 0 disables the limit. */
  readonly ratePerSec: number;
  /** How long an authenticated source stays exempt; 0 exempts nobody. */
  readonly verifiedLifetimeMs: number;
  /** Most verified sources remembered. */
  readonly maxVerified: number;
}

export class SourceRateLimiter {
  private ratePerSec: number;
  private burst: number;
  private verifiedLifetimeMs: number;
  private maxVerified: number;
  private readonly tokens = new Float64Array(TABLE_SIZE);
  private readonly updatedAtMs = new Float64Array(TABLE_SIZE);
  /** Verified source IP → time of its last authenticated request; oldest first. */
  private readonly verified = new Map<string, number>();
  /** Whether the IP holds a live allocation (injected by the TURN service; none by default). */
  private hasAllocation: (address: string) => boolean = () => false;
  /** 401/438 challenges not sent. */
  limitedChallenges = 0;
  /** Other errors (400, 420) not sent. */
  limitedErrors = 0;
  /** Verified sources dropped to make room for newer ones. */
  evictions = 0;

  /** `ratePerSec` 0 disables the limit; `verifiedLifetimeMs` 0 exempts nobody. */
  constructor(options: RateLimitOptions) {
    this.ratePerSec = options.ratePerSec;
    this.burst = options.ratePerSec * 2;
    this.verifiedLifetimeMs = options.verifiedLifetimeMs;
    this.maxVerified = Math.max(1, options.maxVerified);
  }

  /** Applies new settings (reload); the verified set shrinks to the new cap at once. */
  configure(options: RateLimitOptions): void {
    this.ratePerSec = options.ratePerSec;
    this.burst = options.ratePerSec * 2;
    this.verifiedLifetimeMs = options.verifiedLifetimeMs;
    this.maxVerified = Math.max(1, options.maxVerified);
    this.evictOverflow();
  }

  /** Sets the live-allocation check (the TURN service's table). */
  setAllocationCheck(hasAllocation: (address: string) => boolean): void {
    this.hasAllocation = hasAllocation;
  }

  /** Responses refused so far, for every reason. */
  get limited(): number {
    return this.limitedChallenges + this.limitedErrors;
  }

  /** Verified sources remembered now (expired ones included until `prune`). */
  get verifiedCount(): number {
    return this.verified.size;
  }

  /** `address` sent a request with valid MESSAGE-INTEGRITY at `nowMs`. */
  verify(address: string, nowMs: number): void {
    if (this.verifiedLifetimeMs === 0) return;
    const map = this.verified;
    // Re-inserting moves the entry to the newest end.
    if (map.has(address)) map.delete(address);
    map.set(address, nowMs);
    if (map.size > this.maxVerified) this.evictOverflow();
  }

  /** Whether `address` is exempt from the limit at `nowMs`. */
  isVerified(address: string, nowMs: number): boolean {
    if (this.verifiedLifetimeMs === 0) return false;
    const at = this.verified.get(address);
    if (at !== undefined && nowMs - at < this.verifiedLifetimeMs) return true;
    return this.hasAllocation(address);
  }

  /**
   * May an unauthenticated error response of kind `reason` go to `address` at `nowMs`? Verified
   * sources always may; others take a token. False means: do not answer (counted).
   */
  allow(address: string, nowMs: number, reason: RateLimitReason): boolean {
    if (this.ratePerSec === 0 || this.isVerified(address, nowMs)) return true;
    if (this.take(address, nowMs)) return true;
    if (reason === 'challenge') this.limitedChallenges++;
    else this.limitedErrors++;
    return false;
  }

  /** Forgets verified sources whose lifetime ended (call about once a second; O(expired)). */
  prune(nowMs: number): void {
    for (const [address, at] of this.verified) {
      // Oldest first: the first live entry ends the walk.
      if (nowMs - at < this.verifiedLifetimeMs) break;
      this.verified.delete(address);
    }
  }

  private evictOverflow(): void {
    const map = this.verified;
    while (map.size > this.maxVerified) {
      const oldest = map.keys().next();
      if (oldest.done === true) break;
      map.delete(oldest.value);
      this.evictions++;
    }
  }

  /** Takes one token for `address` at `nowMs`; false when its bucket is empty. */
  private take(address: string, nowMs: number): boolean {
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
      return false;
    }
    this.tokens[slot] = tokens - 1;
    return true;
  }
}
