/**
 * What happens to allocations, as events: metrics, the operator log and (later) fleet mode
 * subscribe here instead of reaching into the core's tables. Listeners run synchronously, in
 * subscription order, on the control path (never per relayed packet); a listener must not throw.
 */
import type { AuthFailureReason } from '../auth/authenticate.js';
import type { Allocation } from './allocation.js';

export type DeleteReason = 'expired' | 'refreshed-to-zero' | 'connection-closed' | 'shutdown' | 'admin';

/** What the shell may log about a failed authentication: never a password, key or nonce. */
export interface AuthFailureInfo {
  readonly reason: AuthFailureReason;
  readonly code: 400 | 401 | 438;
  readonly method: number;
  /** USERNAME as sent (cut to 128 characters), `<userhash>` for USERHASH, else undefined. */
  readonly username: string | undefined;
  readonly realm: string | undefined;
  readonly transport: 'udp' | 'tcp' | 'tls';
  readonly address: string;
  readonly port: number;
}

/** A client 5-tuple as it was before a move. */
export interface ClientTuple {
  readonly transport: 'udp' | 'tcp' | 'tls';
  readonly address: string;
  readonly port: number;
}

/** The events, by name, with their listener signatures. */
export interface TurnEvents {
  /** An authenticated Allocate passed its checks: `a` is pending until its relays are bound. */
  allocationRequested?(a: Allocation): void;
  /** The relays are bound and the client got its success. */
  allocationCreated?(a: Allocation): void;
  allocationDeleted?(a: Allocation, reason: DeleteReason): void;
  /** RFC 8016: a Refresh with a MOBILITY-TICKET moved `a` (now on its new 5-tuple) from `from`. */
  allocationMoved?(a: Allocation, from: ClientTuple): void;
  /** A Refresh with a non-zero lifetime. */
  allocationRefreshed?(a: Allocation, lifetimeSec: number): void;
  /** CreatePermission or ChannelBind installed or refreshed permissions for these peer IPs. */
  permissionsSet?(a: Allocation, peerAddresses: readonly string[]): void;
  channelBound?(a: Allocation, number: number, peerAddress: string, peerPort: number): void;
  /** A request failed authentication for a reason other than the first challenge. */
  authFailed?(info: AuthFailureInfo): void;
}

/** A list of `TurnEvents` subscribers. */
export class TurnEventBus {
  private readonly subscribers: TurnEvents[] = [];

  /** Adds a subscriber; returns a function that removes it. */
  subscribe(events: TurnEvents): () => void {
    this.subscribers.push(events);
    return () => {
      const i = this.subscribers.indexOf(events);
      if (i >= 0) this.subscribers.splice(i, 1);
    };
  }

  emitAllocationRequested(a: Allocation): void {
    for (const s of this.subscribers) s.allocationRequested?.(a);
  }

  emitAllocationCreated(a: Allocation): void {
    for (const s of this.subscribers) s.allocationCreated?.(a);
  }

  emitAllocationDeleted(a: Allocation, reason: DeleteReason): void {
    for (const s of this.subscribers) s.allocationDeleted?.(a, reason);
  }

  emitAllocationMoved(a: Allocation, from: ClientTuple): void {
    for (const s of this.subscribers) s.allocationMoved?.(a, from);
  }

  emitAllocationRefreshed(a: Allocation, lifetimeSec: number): void {
    for (const s of this.subscribers) s.allocationRefreshed?.(a, lifetimeSec);
  }

  emitPermissionsSet(a: Allocation, peerAddresses: readonly string[]): void {
    for (const s of this.subscribers) s.permissionsSet?.(a, peerAddresses);
  }

  emitChannelBound(a: Allocation, number: number, peerAddress: string, peerPort: number): void {
    for (const s of this.subscribers) s.channelBound?.(a, number, peerAddress, peerPort);
  }

  emitAuthFailed(info: AuthFailureInfo): void {
    for (const s of this.subscribers) s.authFailed?.(info);
  }
}
