/**
 * RFC 6062 TCP relaying, the shell's side: TCP connections with peers, opened by the server for a
 * Connect or accepted on a TCP allocation's relayed address, and the raw pipe between one of them
 * and a client data connection once the client sent ConnectionBind.
 *
 *  - A peer connection is paused until it is bound: what the peer sends meanwhile waits in the
 *    kernel, whose receive window closes when the buffer is full (RFC 6062 §5.2, §5.3: "the server
 *    MUST buffer … and adjusts its advertised TCP receive window").
 *  - The pipe uses stream backpressure both ways: a side whose peer does not read is paused once
 *    the other's write buffer is full, so nothing queues without bound.
 *  - Either side closing closes the other, and the core forgets the connection.
 *  - Outgoing connections bind the relay IP address. Their port is an ephemeral one, not the relayed
 *    port: Node cannot give a connecting socket SO_REUSEPORT, and Linux refuses to bind a second
 *    socket to the port of a listening one without it.
 * Bytes relayed each way are counted in the allocation's counters and the server's.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { unmapped } from '../core/ip.js';
import type { RelayHandle } from '../core/transport.js';
import type { Allocation } from '../core/turn/allocation.js';
import type { ForwardingTable } from '../core/turn/forwarding.js';
import type { TurnService } from '../core/turn/service.js';
import type { PeerConnection, PendingConnect, TcpConnection, TcpConnector } from '../core/turn/tcp-relay.js';
import type { Logger } from '../log.js';
import { ipLiteralLookup } from './ip-lookup.js';

/** RFC 6062 §5.2: a Connect gives up after at least 30 s. */
export const CONNECT_TIMEOUT_MS = 30_000;

/** One TCP connection with a peer. */
export class PeerSocket implements PeerConnection {
  readonly socket: Socket;
  /** The core's record of it, once it has one. */
  connection: TcpConnection | undefined = undefined;
  /** Piped to a client data connection. */
  piped = false;

  constructor(socket: Socket) {
    this.socket = socket;
  }

  close(): void {
    this.socket.destroy();
  }
}

/** Where a TCP allocation's relay listener hands the connections it accepts. */
export interface TcpPeerSink {
  accepted(owner: Allocation, socket: Socket): void;
}

export interface TcpRelaysOptions {
  /** The TURN service (built after the relay pool, which needs this object: read lazily). */
  readonly turn: () => TurnService;
  readonly plane: ForwardingTable;
  readonly log: Logger;
}

export class TcpRelays implements TcpConnector, TcpPeerSink {
  private readonly turn: () => TurnService;
  private readonly plane: ForwardingTable;
  private readonly log: Logger;
  /** Open peer sockets (for shutdown). */
  private readonly sockets = new Set<Socket>();

  constructor(options: TcpRelaysOptions) {
    this.turn = options.turn;
    this.plane = options.plane;
    this.log = options.log;
  }

  get openSockets(): number {
    return this.sockets.size;
  }

  /** RFC 6062 §5.2: a connection from the relay's address to the peer, for a Connect. */
  connect(
    connection: TcpConnection,
    relay: RelayHandle,
    address: string,
    port: number,
    done: (peer: PeerConnection | undefined) => void,
  ): PendingConnect {
    const timeoutMs = this.turn().options.tcpConnectTimeoutMs ?? CONNECT_TIMEOUT_MS;
    let settled = false;
    let socket: Socket;
    try {
      socket = netConnect({
        host: address,
        port,
        localAddress: relay.localAddress,
        family: relay.family,
        lookup: ipLiteralLookup,
        noDelay: true,
      });
    } catch (err) {
      // An address the socket cannot reach at all: a failure like any other, reported later.
      this.log.debug({ err: (err as Error).message, address, port }, 'tcp relay connect failed');
      const immediate = setImmediate(() => done(undefined));
      return { cancel: () => clearImmediate(immediate) };
    }
    this.track(socket);
    const finish = (peer: PeerConnection | undefined): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.off('connect', onConnect);
      if (peer === undefined) socket.destroy();
      done(peer);
    };
    const timer = setTimeout(() => finish(undefined), timeoutMs);
    timer.unref();
    const onConnect = (): void => {
      // Nothing is read until ConnectionBind: the peer's bytes wait in the kernel.
      socket.pause();
      const peer = new PeerSocket(socket);
      peer.connection = connection;
      socket.once('close', () => this.closed(peer));
      finish(peer);
    };
    socket.once('connect', onConnect);
    socket.once('close', () => finish(undefined));
    return {
      cancel: () => {
        settled = true;
        clearTimeout(timer);
        socket.destroy();
      },
    };
  }

  /** RFC 6062 §5.3: a peer connected to `owner`'s relayed address. */
  accepted(owner: Allocation, socket: Socket): void {
    socket.pause();
    this.track(socket);
    const peer = new PeerSocket(socket);
    const address = socket.remoteAddress;
    const port = socket.remotePort;
    const c =
      address === undefined || port === undefined
        ? undefined
        : this.turn().peerConnected(owner, unmapped(address), port, peer);
    if (c === undefined) {
      socket.destroy();
      return;
    }
    peer.connection = c;
    socket.once('close', () => this.closed(peer));
  }

  /**
   * RFC 6062 §5.4: after `response`, the client data connection `client` and `peer` exchange bytes
   * as they are. `leftover` are bytes the client sent after its ConnectionBind in the same read.
   */
  pipe(
    client: Socket,
    response: Buffer,
    peer: PeerSocket,
    a: Allocation,
    leftover: Buffer | undefined,
  ): void {
    const plane = this.plane;
    const socket = peer.socket;
    peer.piped = true;
    client.write(response);
    if (leftover !== undefined) this.forward(peer, a, leftover);
    client.on('data', (chunk: Buffer) => plane.countStreamRelay(a, true, chunk.length));
    socket.on('data', (chunk: Buffer) => plane.countStreamRelay(a, false, chunk.length));
    // pipe(): the reader pauses while the other side's write buffer is over its high-water mark.
    client.pipe(socket);
    socket.pipe(client);
    client.once('close', () => socket.destroy());
    socket.once('close', () => client.destroy());
    socket.resume();
    client.resume();
  }

  /** Bytes from the client data connection that arrived outside the pipe (with the ConnectionBind). */
  forward(peer: PeerSocket, a: Allocation, bytes: Buffer): void {
    if (bytes.length === 0) return;
    this.plane.countStreamRelay(a, true, bytes.length);
    peer.socket.write(bytes);
  }

  /** Shutdown: every peer connection closes. */
  close(): void {
    for (const s of [...this.sockets]) s.destroy();
  }

  private track(socket: Socket): void {
    this.sockets.add(socket);
    socket.on('error', () => {
      // Resets and refusals by peers are routine; 'close' follows.
    });
    socket.once('close', () => this.sockets.delete(socket));
  }

  private closed(peer: PeerSocket): void {
    const c = peer.connection;
    if (c !== undefined) this.turn().tcpConnectionClosed(c);
  }
}
