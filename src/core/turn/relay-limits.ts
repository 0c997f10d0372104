/**
 * What the relay lets through, whatever the permissions and channels allow: the payload policy
 * (`relay-payload-policy`) and the bandwidth limits (`max-bps`, `user-max-bps`, `bps-capacity`).
 * The JavaScript data plane applies them here; the native threads apply the same rules in
 * `native/worker.cc` (see `dataplane.h`), so both planes relay the same datagrams.
 *
 * Payload policy `webrtc`: a datagram is relayed, client→peer or peer→client, only when its first
 * byte is in a range RFC 7983 §7 gives a protocol a WebRTC session sends: STUN [0..3], DTLS
 * [20..63], RTP/RTCP [128..191]. Everything else — QUIC (long headers 0xC0–0xFF, short headers
 * 0x40–0x7F), plain TCP or HTTP tunnelled over UDP ('G' of "GET" is 71), ZRTP [16..19] — is
 * dropped and counted. An empty datagram has no first byte and is refused too: WebRTC never sends
 * one. It is a check of one byte, not an inspection: it stops tunnels that do not bother to look
 * like media, not a determined one.
 *
 * Bandwidth: token buckets of payload bytes (the DATA of a Send indication or ChannelData, the
 * peer's datagram), both directions of an allocation drawing from the same buckets. A packet passes
 * while every bucket that applies holds a positive balance, and then costs its size (a bucket may
 * go negative by one packet, so a packet larger than a bucket's burst still passes, and the debt
 * is repaid before the next one: over time the rate holds exactly). Over a limit, packets are
 * dropped, never queued. A bucket holds at most `BURST_SECONDS` of its rate.
 */

/** The RFC 7983 §7 first-byte ranges a WebRTC session uses (STUN, DTLS, RTP/RTCP). */
export function isWebRtcPayload(data: Uint8Array): boolean {
  if (data.length === 0) return false;
  const b = data[0]!;
  return b <= 3 || (b >= 20 && b <= 63) || (b >= 128 && b <= 191);
}

/** A bucket holds at most this many seconds of its rate (the burst a limited flow may send at once). */
export const BURST_SECONDS = 0.125;

export interface RelayLimitOptions {
  readonly payloadPolicy: 'any' | 'webrtc';
  /** Payload bytes per second; 0 = unlimited. */
  readonly maxBps: number;
  readonly userMaxBps: number;
  readonly bpsCapacity: number;
}

export const NO_RELAY_LIMITS: RelayLimitOptions = Object.freeze({
  payloadPolicy: 'any',
  maxBps: 0,
  userMaxBps: 0,
  bpsCapacity: 0,
});

/** A token bucket in bytes, refilled from a millisecond clock. */
export class TokenBucket {
  /** Bytes that may pass; negative: the debt of the last packet let through. */
  tokens = 0;
  /** When it was last refilled (NaN: never: it starts full). */
  lastMs = Number.NaN;

  /** Refills for the time since the last call at `rate` bytes/s; true when a packet may pass. */
  ready(rate: number, nowMs: number): boolean {
    const cap = rate * BURST_SECONDS;
    const dt = nowMs - this.lastMs;
    if (dt > 0) this.tokens = Math.min(cap, this.tokens + (dt * rate) / 1000);
    else if (Number.isNaN(dt)) this.tokens = cap;
    // dt <= 0: the clock has not moved (or went back): nothing to add.
    this.lastMs = nowMs;
    return this.tokens > 0;
  }
}

/** Why a packet was dropped by a bandwidth limit (0: it passes). */
export const Limit = { None: 0, Allocation: 1, User: 2, Server: 3 } as const;
export type LimitHit = (typeof Limit)[keyof typeof Limit];

/** One user's bucket, shared by that user's allocations in this plane. */
export interface UserBudget {
  readonly userId: string;
  readonly bucket: TokenBucket;
  refs: number;
}

/**
 * The limits in force and the buckets shared between allocations (per user, the server's). Each
 * allocation owns its own bucket; `acquire`/`release` count the allocations of each user, so a
 * user's bucket lives while the user has one.
 */
export class RelayLimiter {
  private options: RelayLimitOptions = NO_RELAY_LIMITS;
  /** `relay-payload-policy` is `webrtc`. */
  webrtcOnly = false;
  /** Some bandwidth limit is set. */
  limited = false;
  private readonly server = new TokenBucket();
  private readonly users = new Map<string, UserBudget>();

  constructor(options: RelayLimitOptions = NO_RELAY_LIMITS) {
    this.configure(options);
  }

  /** Applies new limits (reload); buckets keep their balance, capped to the new burst on next use. */
  configure(options: RelayLimitOptions): void {
    this.options = options;
    this.webrtcOnly = options.payloadPolicy === 'webrtc';
    this.limited = options.maxBps > 0 || options.userMaxBps > 0 || options.bpsCapacity > 0;
  }

  get current(): RelayLimitOptions {
    return this.options;
  }

  acquire(userId: string): UserBudget {
    let u = this.users.get(userId);
    if (u === undefined) {
      u = { userId, bucket: new TokenBucket(), refs: 0 };
      this.users.set(userId, u);
    }
    u.refs++;
    return u;
  }

  release(u: UserBudget): void {
    if (--u.refs <= 0 && this.users.get(u.userId) === u) this.users.delete(u.userId);
  }

  /**
   * Whether `bytes` of payload of an allocation (its bucket `own`, its user's `user`) pass the
   * bandwidth limits now; when they do, every bucket that applies is charged.
   */
  take(own: TokenBucket, user: UserBudget, bytes: number, nowMs: number): LimitHit {
    const o = this.options;
    if (o.maxBps > 0 && !own.ready(o.maxBps, nowMs)) return Limit.Allocation;
    if (o.userMaxBps > 0 && !user.bucket.ready(o.userMaxBps, nowMs)) return Limit.User;
    if (o.bpsCapacity > 0 && !this.server.ready(o.bpsCapacity, nowMs)) return Limit.Server;
    if (o.maxBps > 0) own.tokens -= bytes;
    if (o.userMaxBps > 0) user.bucket.tokens -= bytes;
    if (o.bpsCapacity > 0) this.server.tokens -= bytes;
    return Limit.None;
  }
}
