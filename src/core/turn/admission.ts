/**
 * The fleet seam of Allocate: a decision the core asks of something outside the node (fleet mode
 * asks Redis) before it binds relay sockets. Both questions are asked in the pending phase of an
 * Allocate (`handlers/allocate.ts`): `redirect` synchronously, from a local replica; `admit`
 * asynchronously, so a slow store never blocks the event loop or other clients — the allocation
 * stays pending (retransmissions are dropped) until `done` is called.
 */
import type { Allocation } from './allocation.js';

/** An address for ALTERNATE-SERVER (RFC 8489 §14.15). */
export interface AlternateAddress {
  readonly address: string;
  readonly port: number;
}

/** 0: admitted; 486: the user's quota is used up; 508: no capacity (the check could not be made). */
export type AdmissionVerdict = 0 | 486 | 508;

export interface AllocationAdmission {
  /**
   * Where a new Allocate should go instead of this node (300 Try Alternate), or undefined to serve
   * it here. `draining` is the node's own drain state; `family` the client's address family (an
   * ALTERNATE-SERVER has the family of the request's source, RFC 8489 §14.15). Synchronous, cheap,
   * must not throw.
   */
  redirect(draining: boolean, family: 4 | 6): AlternateAddress | undefined;
  /** The node-wide allocation cap in force (0: none), replacing `TurnOptions.totalQuota` when defined. */
  totalQuota(): number | undefined;
  /**
   * Decides whether `a` (pending, not yet bound) may be created; calls `done` exactly once, later
   * (never synchronously). An admitted allocation that is then not created (its relay bind failed,
   * or it was deleted while pending) is handed back through `abandon`; one that is created ends
   * with the service's `allocationDeleted` event.
   */
  admit(a: Allocation, done: (verdict: AdmissionVerdict) => void): void;
  /** An admitted allocation that never became live: release what `admit` took. */
  abandon(a: Allocation): void;
}
