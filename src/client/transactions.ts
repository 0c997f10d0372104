/**
 * STUN client transactions (RFC 8489 §6.2): requests matched to responses by transaction ID.
 *
 * Over UDP a request is retransmitted (§6.2.1): the first after RTO, each next wait doubled, Rc
 * transmissions in all, then a last wait of Rm × RTO. Over TCP and TLS it is sent once (§6.2.2)
 * and waited for up to Ti (39.5 s). An optional overall deadline cuts either short: the probe
 * retransmits until its per-step timeout, whatever the count.
 *
 * The schedule is a pure function; `Transactions` only holds the timers and the pending requests.
 */
import { TransactionError } from './errors.js';
import type { TurnResponse } from './messages.js';

export interface RetransmitPolicy {
  /** RTO: the first retransmission timeout, ms (doubles after each transmission). */
  readonly rtoMs: number;
  /** Rc: transmissions at most over UDP (Infinity: until the deadline). */
  readonly transmissions: number;
  /** Rm: the wait after the last UDP transmission, as a multiple of RTO. */
  readonly lastWaitFactor: number;
  /** An overall deadline per transaction, ms; over TCP/TLS the whole wait (default Ti). */
  readonly timeoutMs?: number | undefined;
}

/** RFC 8489 §6.2.1 defaults: RTO 500 ms, Rc 7, Rm 16 (39.5 s in all). */
export const RFC8489_RETRANSMIT: RetransmitPolicy = { rtoMs: 500, transmissions: 7, lastWaitFactor: 16 };

/** RFC 8489 §6.2.2: Ti, how long a request over TCP/TLS is waited for. */
export const STREAM_TIMEOUT_MS = 39_500;

/** How a transaction ended. */
export type TransactionOutcome =
  | {
      readonly kind: 'response';
      readonly response: TurnResponse;
      /** From the first transmission to the answer, ms. */
      readonly rttMs: number;
      readonly transmissions: number;
    }
  | { readonly kind: 'timeout'; readonly transmissions: number }
  | { readonly kind: 'error'; readonly code: string; readonly message: string };

/**
 * What to do after transmission number `sent` (1-based) with `leftMs` until the deadline:
 * retransmit after `waitMs`, or give up after `waitMs`.
 */
export function nextStep(
  policy: RetransmitPolicy,
  reliable: boolean,
  sent: number,
  leftMs: number,
): { readonly retransmit: boolean; readonly waitMs: number } {
  if (leftMs <= 0) return { retransmit: false, waitMs: 0 };
  if (reliable) return { retransmit: false, waitMs: leftMs };
  const more = sent < policy.transmissions;
  const waitMs = more ? policy.rtoMs * 2 ** (sent - 1) : policy.rtoMs * policy.lastWaitFactor;
  return waitMs >= leftMs ? { retransmit: false, waitMs: leftMs } : { retransmit: more, waitMs };
}

/** The error a throwing caller sees for an outcome that is not a response; `what` names the request. */
export function outcomeError(
  o: Exclude<TransactionOutcome, { kind: 'response' }>,
  what: string,
): TransactionError {
  return o.kind === 'timeout'
    ? new TransactionError(
        'timeout',
        'ETIMEDOUT',
        `no response to ${what} after ${o.transmissions} transmissions`,
        o.transmissions,
      )
    : new TransactionError('error', o.code, o.message, 0);
}

interface Pending {
  readonly method: number;
  readonly startedAt: number;
  transmissions: number;
  timer: NodeJS.Timeout | undefined;
  readonly done: (o: TransactionOutcome) => void;
}

/** The pending requests of one client; the client feeds it the answers it receives. */
export class Transactions {
  private readonly pending = new Map<string, Pending>();
  private readonly write: (buf: Buffer) => void;
  private readonly reliable: boolean;
  /** Request messages sent, first transmissions included. */
  transmissions = 0;
  /** Request messages sent again after a timeout. */
  retransmissions = 0;

  constructor(write: (buf: Buffer) => void, reliable: boolean) {
    this.write = write;
    this.reliable = reliable;
  }

  /** Whether `tid` (hex) is waiting for an answer, and of which method. */
  methodOf(tid: string): number | undefined {
    return this.pending.get(tid)?.method;
  }

  /** Sends `raw` (a request of `method`) on `policy`'s schedule until answered or given up. */
  run(raw: Buffer, method: number, policy: RetransmitPolicy): Promise<TransactionOutcome> {
    const tid = raw.toString('hex', 8, 20);
    // Over TCP/TLS the wait is the deadline or Ti; over UDP without a deadline the count ends it.
    const timeoutMs = policy.timeoutMs ?? (this.reliable ? STREAM_TIMEOUT_MS : Number.POSITIVE_INFINITY);
    const deadline = performance.now() + timeoutMs;
    return new Promise<TransactionOutcome>((resolve) => {
      const p: Pending = {
        method,
        startedAt: performance.now(),
        transmissions: 0,
        timer: undefined,
        done: (o) => {
          clearTimeout(p.timer);
          if (this.pending.get(tid) === p) this.pending.delete(tid);
          resolve(o);
        },
      };
      this.pending.get(tid)?.done({ kind: 'error', code: 'EALREADY', message: 'the same transaction again' });
      this.pending.set(tid, p);
      const fire = (): void => {
        if (p.transmissions > 0) this.retransmissions++;
        p.transmissions++;
        this.transmissions++;
        this.write(raw);
        const step = nextStep(policy, this.reliable, p.transmissions, deadline - performance.now());
        if (step.waitMs <= 0) p.done({ kind: 'timeout', transmissions: p.transmissions });
        else if (step.retransmit) p.timer = setTimeout(fire, step.waitMs);
        else
          p.timer = setTimeout(
            () => p.done({ kind: 'timeout', transmissions: p.transmissions }),
            step.waitMs,
          );
      };
      fire();
    });
  }

  /** Ends the transaction `tid` with its answer. */
  answer(tid: string, response: TurnResponse): void {
    const p = this.pending.get(tid);
    if (p === undefined) return;
    p.done({
      kind: 'response',
      response,
      rttMs: performance.now() - p.startedAt,
      transmissions: p.transmissions,
    });
  }

  /** Ends the transaction `tid` with an error (an answer that is not one). */
  reject(tid: string, code: string, message: string): void {
    this.pending.get(tid)?.done({ kind: 'error', code, message });
  }

  /** Ends every pending transaction with an error. */
  failAll(code: string, message: string): void {
    for (const p of [...this.pending.values()]) p.done({ kind: 'error', code, message });
  }
}
