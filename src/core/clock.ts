/**
 * The one clock of the core, the relay pool and the reservations. The core never reads
 * `Date.now()` itself: the shell injects `systemClock`, tests inject a `ManualClock` they move.
 * TURN lifetimes are whole seconds (RFC 8656), the rate limiter works in milliseconds.
 */
export interface Clock {
  /** Milliseconds since the epoch. */
  nowMs(): number;
  /** Whole seconds since the epoch: `floor(nowMs() / 1000)`. */
  nowSec(): number;
}

export const systemClock: Clock = Object.freeze({
  nowMs: () => Date.now(),
  nowSec: () => Math.floor(Date.now() / 1000),
});

/** A clock that moves only when told to (tests, simulations). */
export class ManualClock implements Clock {
  private ms: number;

  constructor(startMs: number) {
    this.ms = startMs;
  }

  nowMs(): number {
    return this.ms;
  }

  nowSec(): number {
    return Math.floor(this.ms / 1000);
  }

  /** Moves the clock forward by `ms`. */
  advance(ms: number): void {
    this.ms += ms;
  }

  set(ms: number): void {
    this.ms = ms;
  }
}
