/**
 * RFC 6062 TCP allocations, the control plane's side: the peer data connections of every TCP
 * allocation, by CONNECTION-ID and by allocation, and what happens to them —
 *
 *  - Connect (§5.2): the shell opens a TCP connection from the relay address to the peer; the
 *    answer (success with CONNECTION-ID, or 447) goes out when it is open or has failed;
 *  - an incoming peer connection on the relayed address (§5.3) is kept only when the peer's IP has
 *    a permission (and the peer policy still allows it); the client hears of it through a
 *    ConnectionAttempt indication on its control connection;
 *  - ConnectionBind (§5.4) on a new client connection turns that connection into the raw byte pipe
 *    to the peer connection;
 *  - a peer connection nobody binds within 30 s is closed (§5.2, §5.3), as is every connection of
 *    an allocation when the allocation goes.
 *
 * Sans-I/O: sockets are the shell's (`TcpConnector`, `PeerConnection`, `DataConnectionEndpoint`);
 * time is whole seconds checked by the once-a-second sweep, never a timer per connection.
 */
import { randomBytes, randomInt } from 'node:crypto';
import { AttrType, Class, Method } from '../constants.js';
import { StunWriter } from '../stun/encode.js';
import type { ClientEndpoint, RelayHandle } from '../transport.js';
import type { Allocation } from './allocation.js';

/** RFC 6062 §5.2, §5.3: a peer data connection waits this long for its ConnectionBind. */
export const CONNECTION_BIND_TIMEOUT_SEC = 30;
/** Default of `tcp-relay-max-connections`. */
export const DEFAULT_MAX_TCP_CONNECTIONS = 32;
/** Attempts at drawing an unused CONNECTION-ID (2^32 values, at most a few thousand in use). */
const ID_ATTEMPTS = 16;

/** One TCP connection with a peer, as the shell holds it. */
export interface PeerConnection {
  /** Closes the connection (and the client data connection piped to it); idempotent. */
  close(): void;
}

/**
 * A client connection that can become a client data connection (RFC 6062 §5.4): the shell's
 * TCP/TLS connections.
 */
export interface DataConnectionEndpoint extends ClientEndpoint {
  /**
   * Writes `response` (the ConnectionBind success), then relays bytes as they are between this
   * connection and `peer`, both ways, until either closes; `connection` is what the shell reports
   * back (traffic, close). False when the connection can no longer do it (closing).
   */
  becomeDataConnection(response: Buffer, peer: PeerConnection, connection: TcpConnection): boolean;
}

export function isDataConnectionEndpoint(e: ClientEndpoint): e is DataConnectionEndpoint {
  return typeof (e as Partial<DataConnectionEndpoint>).becomeDataConnection === 'function';
}

/** A Connect in progress (the shell's TCP handshake with the peer); `cancel` abandons it. */
export interface PendingConnect {
  cancel(): void;
}

/** What the core asks of the shell for TCP relaying. */
export interface TcpConnector {
  /**
   * Opens a TCP connection from `relay`'s address to `address`:`port` (RFC 6062 §5.2), giving up
   * after at least 30 s. `done` is called once, later (never synchronously): with the open
   * connection, or undefined when it failed or timed out. Not called after `cancel`.
   */
  connect(
    connection: TcpConnection,
    relay: RelayHandle,
    address: string,
    port: number,
    done: (peer: PeerConnection | undefined) => void,
  ): PendingConnect;
}

export const TcpState = {
  /** Connect: the server's connection to the peer is being opened. */
  Connecting: 0,
  /** Open with the peer, waiting for the client's ConnectionBind (30 s). */
  Pending: 1,
  /** Piped to a client data connection. */
  Bound: 2,
} as const;
export type TcpState = (typeof TcpState)[keyof typeof TcpState];

/** One peer data connection of a TCP allocation. Fixed shape; `closed` once forgotten. */
export class TcpConnection {
  /** CONNECTION-ID (RFC 6062 §6.2.1): unique among live connections, drawn at random. */
  readonly id: number;
  readonly allocation: Allocation;
  /** The peer as the client knows it (an advertised address for our own relays behind 1:1 NAT). */
  readonly peerAddress: string;
  readonly peerPort: number;
  /** Opened by the server (Connect) or by the peer (ConnectionAttempt). */
  readonly outbound: boolean;
  state: TcpState;
  peer: PeerConnection | undefined = undefined;
  pendingConnect: PendingConnect | undefined = undefined;
  /** Pending: closed when the clock reaches this second without a ConnectionBind. */
  bindDeadlineSec = 0;
  closed = false;

  constructor(
    id: number,
    allocation: Allocation,
    peerAddress: string,
    peerPort: number,
    outbound: boolean,
    state: TcpState,
  ) {
    this.id = id;
    this.allocation = allocation;
    this.peerAddress = peerAddress;
    this.peerPort = peerPort;
    this.outbound = outbound;
    this.state = state;
  }
}

/** Connections by state, for the metrics gauge. */
export interface TcpConnectionCounts {
  readonly connecting: number;
  readonly pending: number;
  readonly bound: number;
}

/** The peer data connections of every TCP allocation. */
export class TcpConnections {
  private readonly byId = new Map<number, TcpConnection>();
  private readonly byAllocation = new Map<Allocation, Set<TcpConnection>>();
  private readonly writer = new StunWriter(128);

  get size(): number {
    return this.byId.size;
  }

  get(id: number): TcpConnection | undefined {
    return this.byId.get(id);
  }

  /** Connections of `a` (any state). */
  countOf(a: Allocation): number {
    return this.byAllocation.get(a)?.size ?? 0;
  }

  *of(a: Allocation): IterableIterator<TcpConnection> {
    const set = this.byAllocation.get(a);
    if (set !== undefined) yield* set;
  }

  /** A connection of `a` with this peer transport address, in any state (RFC 6062 §5.2: 446). */
  findPeer(a: Allocation, peerAddress: string, peerPort: number): TcpConnection | undefined {
    const set = this.byAllocation.get(a);
    if (set === undefined) return undefined;
    for (const c of set) if (c.peerAddress === peerAddress && c.peerPort === peerPort) return c;
    return undefined;
  }

  /** Registers a new connection of `a` under a fresh random CONNECTION-ID; undefined if none is free. */
  add(
    a: Allocation,
    peerAddress: string,
    peerPort: number,
    outbound: boolean,
    state: TcpState,
  ): TcpConnection | undefined {
    let id = 0;
    for (let i = 0; i < ID_ATTEMPTS && id === 0; i++) {
      const candidate = randomInt(1, 0xffffffff);
      if (!this.byId.has(candidate)) id = candidate;
    }
    if (id === 0) return undefined;
    const c = new TcpConnection(id, a, peerAddress, peerPort, outbound, state);
    this.byId.set(id, c);
    let set = this.byAllocation.get(a);
    if (set === undefined) {
      set = new Set();
      this.byAllocation.set(a, set);
    }
    set.add(c);
    return c;
  }

  /** Forgets `c` and closes what it holds (the peer connection, a connect in progress); idempotent. */
  close(c: TcpConnection): void {
    if (c.closed) return;
    c.closed = true;
    this.byId.delete(c.id);
    const set = this.byAllocation.get(c.allocation);
    if (set !== undefined) {
      set.delete(c);
      if (set.size === 0) this.byAllocation.delete(c.allocation);
    }
    c.pendingConnect?.cancel();
    c.pendingConnect = undefined;
    c.peer?.close();
  }

  /** Every connection of `a` closes (the allocation is gone). */
  closeAllOf(a: Allocation): void {
    const set = this.byAllocation.get(a);
    if (set === undefined) return;
    for (const c of [...set]) this.close(c);
  }

  /** Closes the pending connections whose ConnectionBind did not come in time; returns how many. */
  expire(nowSec: number): number {
    let n = 0;
    for (const c of this.byId.values()) {
      if (c.state === TcpState.Pending && c.bindDeadlineSec <= nowSec) {
        this.close(c); // deleting the current entry of a Map being iterated is safe
        n++;
      }
    }
    return n;
  }

  counts(): TcpConnectionCounts {
    let connecting = 0;
    let pending = 0;
    let bound = 0;
    for (const c of this.byId.values()) {
      if (c.state === TcpState.Connecting) connecting++;
      else if (c.state === TcpState.Pending) pending++;
      else bound++;
    }
    return { connecting, pending, bound };
  }

  /**
   * RFC 6062 §5.3: the ConnectionAttempt indication for `c`, with XOR-PEER-ADDRESS and
   * CONNECTION-ID (and FINGERPRINT, as the server's other messages over streams may carry it).
   */
  connectionAttempt(c: TcpConnection): Buffer {
    return this.writer
      .start(Method.ConnectionAttempt, Class.Indication, randomBytes(12))
      .addAddress(AttrType.XorPeerAddress, c.peerAddress, c.peerPort, true)
      .addUint32(AttrType.ConnectionId, c.id)
      .addFingerprint()
      .finish();
  }
}
