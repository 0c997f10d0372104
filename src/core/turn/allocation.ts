/**
 * TURN allocation state (RFC 8656 §2.2, §9, §11). Classes with fixed shapes: every field is set in
 * the constructor and never deleted, so the relay hot path sees monomorphic objects.
 */

/** How the core reaches a client: a UDP listener socket, or one TCP/TLS connection. */
export interface ClientEndpoint {
  readonly transport: 'udp' | 'tcp' | 'tls';
  /** Sends one message to the client (UDP: a datagram to address:port; streams: the connection). */
  send(buf: Buffer, address: string, port: number): void;
  /** Sends the concatenation of `bufs` as one message (scatter/gather, no copy). */
  sendv(bufs: readonly Buffer[], address: string, port: number): void;
}

/** A bound relay socket, as the shell hands it to the core. */
export interface RelayHandle {
  readonly family: 4 | 6;
  /** Address the socket is bound to. */
  readonly localAddress: string;
  readonly port: number;
  /** Address advertised in XOR-RELAYED-ADDRESS: the external (public) address behind 1:1 NAT, else localAddress. */
  readonly advertisedAddress: string;
  /** Sends `data` to a peer. */
  send(data: Buffer, port: number, address: string): void;
  /** Closes the socket and returns the port to the pool; idempotent. */
  close(): void;
}

/** A channel binding (RFC 8656 §12): channel number ↔ peer transport address. */
export class Channel {
  readonly number: number;
  readonly peerAddress: string;
  readonly peerPort: number;
  expiresAtSec: number;
  constructor(number: number, peerAddress: string, peerPort: number, expiresAtSec: number) {
    this.number = number;
    this.peerAddress = peerAddress;
    this.peerPort = peerPort;
    this.expiresAtSec = expiresAtSec;
  }
}

export class Allocation {
  readonly id: number;
  readonly endpoint: ClientEndpoint;
  readonly clientAddress: string;
  readonly clientPort: number;
  /** USERNAME that created it (RFC 8656 §7.2: later requests must use the same, else 441). */
  readonly username: string;
  /** Quota key: the REST userid, or the static user name. */
  readonly userId: string;
  readonly createdAtSec: number;
  expiresAtSec: number;
  /** Relay sockets: one, or two for a dual-stack allocation (RFC 8656 §7.2 ADDITIONAL-ADDRESS-FAMILY). */
  relays: RelayHandle[] = [];
  /** Installed permissions: peer IP (canonical text) → expiry (RFC 8656 §9). */
  readonly permissions = new Map<string, number>();
  readonly channelsByNumber = new Map<number, Channel>();
  /** Peer IP → peer port → channel, for the peer-to-client path. */
  readonly channelsByPeer = new Map<string, Map<number, Channel>>();
  /** True until the relay sockets are bound (Allocate is two-phase: Node binds asynchronously). */
  pending = true;
  deleted = false;
  /** Transaction ID (hex) of the Allocate that created it, for retransmissions (RFC 8656 §7.2). */
  readonly allocateTid: string;
  packetsToPeer = 0;
  bytesToPeer = 0;
  packetsToClient = 0;
  bytesToClient = 0;

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

  hasPermission(peerAddress: string, nowSec: number): boolean {
    const exp = this.permissions.get(peerAddress);
    return exp !== undefined && exp > nowSec;
  }

  /** The live channel bound to this peer, if any. */
  channelForPeer(peerAddress: string, peerPort: number, nowSec: number): Channel | undefined {
    const ch = this.channelsByPeer.get(peerAddress)?.get(peerPort);
    return ch !== undefined && ch.expiresAtSec > nowSec ? ch : undefined;
  }

  unbindChannel(ch: Channel): void {
    this.channelsByNumber.delete(ch.number);
    const ports = this.channelsByPeer.get(ch.peerAddress);
    if (ports === undefined) return;
    ports.delete(ch.peerPort);
    if (ports.size === 0) this.channelsByPeer.delete(ch.peerAddress);
  }

  bindChannel(ch: Channel): void {
    this.channelsByNumber.set(ch.number, ch);
    let ports = this.channelsByPeer.get(ch.peerAddress);
    if (ports === undefined) {
      ports = new Map();
      this.channelsByPeer.set(ch.peerAddress, ports);
    }
    ports.set(ch.peerPort, ch);
  }

  /** Drops expired permissions and channels (called from the periodic sweep, not per packet). */
  prune(nowSec: number): void {
    for (const [ip, exp] of this.permissions) if (exp <= nowSec) this.permissions.delete(ip);
    for (const ch of this.channelsByNumber.values()) if (ch.expiresAtSec <= nowSec) this.unbindChannel(ch);
  }

  /** Live permission count (expired entries not yet pruned do not count). */
  livePermissions(nowSec: number): number {
    let n = 0;
    for (const exp of this.permissions.values()) if (exp > nowSec) n++;
    return n;
  }

  liveChannels(nowSec: number): number {
    let n = 0;
    for (const ch of this.channelsByNumber.values()) if (ch.expiresAtSec > nowSec) n++;
    return n;
  }
}
