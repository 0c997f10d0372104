/**
 * An allocation as the control plane knows it (RFC 8656 §2.2): who owns it, on which client
 * 5-tuple, its relay sockets and its lifetime. What it forwards — permissions, channels, traffic
 * counters — is the data plane's (`ForwardingTable`). A fixed-shape class: every field is set in the
 * constructor and never deleted.
 */
import type { ClientEndpoint, RelayHandle } from '../transport.js';

export type { ClientEndpoint, RelayHandle } from '../transport.js';

export class Allocation {
  readonly id: number;
  /** The client 5-tuple: changed only by an RFC 8016 move (`TurnService.moveAllocation`). */
  endpoint: ClientEndpoint;
  clientAddress: string;
  clientPort: number;
  /** USERNAME that created it (RFC 8656 §7.2: later requests must use the same, else 441). */
  readonly username: string;
  /** Quota key: the REST userid, or the static user name. */
  readonly userId: string;
  readonly createdAtSec: number;
  expiresAtSec: number;
  /** Relay sockets: one, or two for a dual-stack allocation (RFC 8656 §7.2 ADDITIONAL-ADDRESS-FAMILY). */
  relays: RelayHandle[] = [];
  /** What the relay carries: UDP datagrams (RFC 8656), or TCP connections (RFC 6062, `tcp-relay`). */
  relayTransport: 'udp' | 'tcp' = 'udp';
  /** True until the relay sockets are bound (Allocate is two-phase: sockets bind asynchronously). */
  pending = true;
  deleted = false;
  /**
   * RFC 8016 mobility: 0 when the allocation is not mobile; else the generation its tickets carry,
   * random and drawn again at every move (`mobility.ts`).
   */
  mobilityGeneration = 0;
  /** Transaction ID (latin1) of the Allocate that created it, for retransmissions (RFC 8656 §7.2). */
  readonly allocateTid: string;
  /**
   * The data plane's own per-allocation state, opaque to the core (set by `ForwardingTable.install`),
   * so that a relay socket's packets reach it without a lookup.
   */
  dataPlaneState: object | undefined = undefined;

  constructor(
    id: number,
    endpoint: ClientEndpoint,
    clientAddress: string,
    clientPort: number,
    username: string,
    userId: string,
    nowSec: number,
    lifetimeSec: number,
    allocateTid: string,
  ) {
    this.id = id;
    this.endpoint = endpoint;
    this.clientAddress = clientAddress;
    this.clientPort = clientPort;
    this.username = username;
    this.userId = userId;
    this.createdAtSec = nowSec;
    this.expiresAtSec = nowSec + lifetimeSec;
    this.allocateTid = allocateTid;
  }

  /** The relay socket of `family`, if the allocation has one. */
  relayFor(family: 4 | 6): RelayHandle | undefined {
    for (const r of this.relays) if (r.family === family) return r;
    return undefined;
  }
}
