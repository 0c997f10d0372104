/**
 * The seam between the TURN core (control plane) and the data plane. The core decides — it
 * authenticates, applies the peer policy, quotas and lifetimes — and programs a `ForwardingTable`;
 * the data plane forwards ChannelData and Data indications with what was programmed, and never
 * decides anything else. The JavaScript data plane (`js-data-plane.ts`) is one implementation; a
 * native one is another, and the core does not know which one it talks to.
 *
 * Times are whole seconds (`expiresAtSec` against the clock's `nowSec`). Entries past their expiry
 * no longer forward; `prune` forgets them.
 */

import type { ClientEndpoint, RelayHandle } from '../transport.js';
import type { Allocation } from './allocation.js';
import type { RelayLimitOptions } from './relay-limits.js';

/** A channel binding (RFC 8656 §12) as the table holds it. */
export interface ChannelBinding {
  readonly number: number;
  readonly peerAddress: string;
  readonly peerPort: number;
  readonly expiresAtSec: number;
}

/** Traffic relayed for one allocation (payload bytes), and what its limits dropped (packets, both directions). */
export interface AllocationCounters {
  readonly packetsToPeer: number;
  readonly bytesToPeer: number;
  readonly packetsToClient: number;
  readonly bytesToClient: number;
  /** Refused by `relay-payload-policy`. */
  readonly payloadRefused: number;
  /** Dropped over a bandwidth limit (`max-bps`, `user-max-bps`, `bps-capacity`). */
  readonly bandwidthDropped: number;
}

export interface ForwardingTable {
  /** Starts forwarding for `a`, whose relays are bound: its client 5-tuple and relay sockets. */
  install(a: Allocation): void;
  /**
   * RFC 8016: `a` (installed) now serves the client at `address`:`port` on `endpoint`, of the same
   * transport; its permissions, channels, counters and relays stay, its old 5-tuple forwards
   * nothing more. Called before the core updates `a`'s own fields (they still name the old
   * 5-tuple). False, with nothing changed, when this plane cannot serve `a` from `endpoint`.
   */
  move(a: Allocation, endpoint: ClientEndpoint, address: string, port: number): boolean;
  /** Stops forwarding for `a` and forgets its permissions and channels. */
  uninstall(a: Allocation): void;
  /** Installs or refreshes the permission for `peerAddress` (RFC 8656 §9). */
  setPermission(a: Allocation, peerAddress: string, expiresAtSec: number): void;
  hasPermission(a: Allocation, peerAddress: string, nowSec: number): boolean;
  livePermissions(a: Allocation, nowSec: number): number;
  /**
   * Binds channel `number` to the peer, or refreshes that binding; an expired binding of the same
   * number or of the same peer is replaced (RFC 8656 §11.2).
   */
  bindChannel(
    a: Allocation,
    number: number,
    peerAddress: string,
    peerPort: number,
    expiresAtSec: number,
  ): void;
  /** The live binding of channel `number`. */
  channel(a: Allocation, number: number, nowSec: number): ChannelBinding | undefined;
  /** The live binding of the peer transport address. */
  channelForPeer(
    a: Allocation,
    peerAddress: string,
    peerPort: number,
    nowSec: number,
  ): ChannelBinding | undefined;
  liveChannels(a: Allocation, nowSec: number): number;
  /** Forgets the expired permissions and channels of `a` (the periodic sweep). */
  prune(a: Allocation, nowSec: number): void;
  counters(a: Allocation): AllocationCounters;
  /** Applies the payload policy and bandwidth limits in force (at start and on reload). */
  setLimits(options: RelayLimitOptions): void;
  /**
   * Relays `data` from the client of `a` to a peer on `relay` (a Send indication the core has
   * checked: permission and peer policy).
   */
  sendToPeer(a: Allocation, relay: RelayHandle, data: Buffer, peerAddress: string, peerPort: number): void;
  /**
   * RFC 6062: bytes a TCP allocation's data connections relayed (the shell pipes them), added to the
   * allocation's counters and the server's; each read counts as one packet.
   */
  countStreamRelay(a: Allocation, toPeer: boolean, bytes: number): void;
}

/** Where the listeners hand ChannelData from clients (RFC 8656 §12.6). */
export interface ClientDataSink {
  /**
   * `buf` is a ChannelData message from `address`:`port` on `endpoint` whose header was checked:
   * a valid channel number and `len` bytes of data present (`channelDataLength`).
   */
  fromClient(endpoint: ClientEndpoint, buf: Buffer, len: number, address: string, port: number): void;
}

/** Where relay sockets hand datagrams from peers (RFC 8656 §10.3, §12.6). */
export interface PeerDataSink {
  fromPeer(a: Allocation, relay: RelayHandle, msg: Buffer, address: string, port: number): void;
}
