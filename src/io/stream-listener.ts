/**
 * STUN and TURN over TCP and TLS (RFC 8489 §6.2.2, RFC 8656 §5, §12.5) with RFC 8656 stream
 * framing. Each connection owns a StreamFramer and is the ClientEndpoint of its allocation.
 *
 * Limits protect the process from any single client:
 *  - a cap on concurrent connections in total (further ones are closed at accept);
 *  - a cap per source IP that counts only unauthenticated connections, those holding no allocation
 *    (being set up, Binding-only, or whose allocation ended). Many clients share one IP (corporate
 *    egress, CGNAT): once a connection has allocated it counts against the user and total quotas
 *    of the TURN core instead. A new connection from an IP at its cap closes the oldest
 *    unauthenticated connection of that IP (even mid-handshake), so a flood of idle connections
 *    from one address cannot lock out a client behind it;
 *  - a TLS handshake timeout;
 *  - an idle timeout while the connection holds no allocation (a connection that never sends a
 *    valid message, or a Binding-only one gone quiet); with an allocation, the allocation's own
 *    lifetime governs, and the connection closing deletes the allocation at once (RFC 8656 §5);
 *  - a frame timeout: a connection that stops in the middle of a message is closed after
 *    `frameTimeoutMs`, however recently it sent its last byte;
 *  - a maximum frame size; garbage at a message boundary closes the connection;
 *  - an output budget: data for a client that does not read is dropped and counted, never queued
 *    without bound.
 * With `proxyProtocol`, each connection must start with a PROXY v1/v2 header (from a load
 * balancer); the address in it is the client's address for everything that follows. A listener
 * serving both TCP and TLS tells them apart by the first byte after that (0x16: a TLS record).
 * Timeouts are checked by one coarse sweep per listener, not by a timer per connection.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { type SecureContext, TLSSocket } from 'node:tls';
import { unmapped } from '../core/ip.js';
import { parseProxyHeader } from '../core/proxy-protocol.js';
import { StreamFramer } from '../core/stream-framer.js';
import type { StunCore } from '../core/stun-core.js';
import type { ClientEndpoint } from '../core/transport.js';
import type { Allocation } from '../core/turn/allocation.js';
import type { DataConnectionEndpoint, PeerConnection, TcpConnection } from '../core/turn/tcp-relay.js';
import { BindError } from '../errors.js';
import type { Logger } from '../log.js';
import { PerIpCap } from './per-ip-cap.js';
import { PeerSocket, type TcpRelays } from './tcp-relay.js';

/** Connections open across all stream listeners, against the `max-tcp-connections` cap. */
export interface ConnectionBudget {
  open: number;
  readonly max: number;
}

export interface StreamListenerOptions {
  readonly address: string;
  readonly port: number;
  /** Shared by every TCP/TLS listener of the server. */
  readonly budget: ConnectionBudget;
  /**
   * Most concurrent unauthenticated connections (holding no allocation) from one source IP; at the
   * cap, a new connection closes the IP's oldest one (0 = no per-IP cap).
   */
  readonly maxConnectionsPerIp: number;
  readonly idleTimeoutMs: number;
  readonly frameTimeoutMs: number;
  readonly maxFrameBytes: number;
  /** Bytes that may wait in a connection's send buffer before further output is dropped. */
  readonly maxPendingWriteBytes: number;
  /** Expect a PROXY protocol header before anything else. */
  readonly proxyProtocol: boolean;
  /** TLS: the current certificate/key context, read at each new connection (hot reload). */
  readonly tls?: { readonly context: () => SecureContext; readonly handshakeTimeoutMs: number };
  /**
   * Plain TCP is served. With `tls` as well, the listener tells them apart by the first byte of the
   * connection (after any PROXY header): 0x16 starts a TLS handshake record, while STUN starts with
   * 0x00/0x01 and ChannelData with 0x40-0x7F. Without `tls`, plain only; `false` with `tls`: TLS only.
   */
  readonly plain: boolean;
  /** RFC 6062: pipes client data connections to peer connections (none: ConnectionBind cannot succeed). */
  readonly tcpRelays?: TcpRelays | undefined;
}

/** RFC 8446 §5.1 / RFC 5246 §6.2.1: ContentType handshake, the first byte of a TLS connection. */
const TLS_HANDSHAKE_RECORD = 0x16;

const ConnState = { Proxy: 0, Handshake: 1, Open: 2 } as const;
type ConnState = (typeof ConnState)[keyof typeof ConnState];

class Connection implements DataConnectionEndpoint {
  /** Set before the first message is handled: 'tls' once TLS is started on the connection. */
  transport: 'tcp' | 'tls';
  /** The socket carrying STUN/TURN: the TLSSocket for TLS, else the TCP socket. */
  stream: Socket;
  readonly raw: Socket;
  readonly framer: StreamFramer;
  /** The client's address: the peer of the TCP connection, or the one a PROXY header gave. */
  remoteAddress: string;
  remotePort: number;
  /** The address counted against the per-IP cap (the TCP peer; a PROXY header does not move it). */
  readonly capAddress: string;
  state: ConnState;
  openedAtMs: number;
  lastMessageAtMs: number;
  midFrameSinceMs = 0;
  /** Bytes of a PROXY header received so far. */
  proxyBuf: Buffer | undefined = undefined;
  /**
   * The allocation of this connection's 5-tuple as last looked up (pending included), or undefined.
   * Undefined (or deleted) exactly when the connection counts against the per-IP cap.
   */
  allocation: Allocation | undefined = undefined;
  /** In the listener's per-IP set of unauthenticated connections. */
  counted = false;
  closed = false;
  /** RFC 6062 §5.4: a client data connection, piped to a peer; no STUN is read from it any more. */
  isData = false;
  dataPeer: PeerSocket | undefined = undefined;
  dataAllocation: Allocation | undefined = undefined;
  private readonly listener: StreamListener;

  constructor(raw: Socket, framer: StreamFramer, listener: StreamListener, nowMs: number) {
    this.raw = raw;
    this.stream = raw;
    this.transport = 'tcp';
    this.framer = framer;
    this.remoteAddress = unmapped(raw.remoteAddress ?? '');
    this.remotePort = raw.remotePort ?? 0;
    this.capAddress = this.remoteAddress;
    this.state = ConnState.Open;
    this.openedAtMs = nowMs;
    this.lastMessageAtMs = nowMs;
    this.listener = listener;
  }

  send(buf: Buffer): void {
    if (this.listener.admit(this, buf.length)) this.stream.write(buf);
  }

  becomeDataConnection(response: Buffer, peer: PeerConnection, connection: TcpConnection): boolean {
    return this.listener.toDataConnection(this, response, peer, connection);
  }

  sendv(bufs: readonly Buffer[]): void {
    let n = 0;
    for (const b of bufs) n += b.length;
    if (!this.listener.admit(this, n)) return;
    const s = this.stream;
    if (this.transport === 'tls') {
      // One write, one TLS record per message: TLS encrypts (copies) anyway, and clients that read a
      // record at a time (coturn's uclient) then never see a message split across records.
      s.write(Buffer.concat(bufs as Buffer[], n));
      return;
    }
    s.cork();
    for (const b of bufs) s.write(b);
    s.uncork();
  }
}

/** What the listener asks of the TURN service about its connections (`TurnService` provides it). */
export interface StreamSessions {
  /** The allocation of a client 5-tuple, pending ones included. */
  findAllocation(endpoint: ClientEndpoint, address: string, port: number): Allocation | undefined;
  /** The connection closed: its allocations end with it (RFC 8656 §5). */
  endpointClosed(endpoint: ClientEndpoint): void;
}

export class StreamListener {
  readonly options: StreamListenerOptions;
  private readonly core: StunCore;
  private readonly sessions: StreamSessions | undefined;
  private readonly log: Logger;
  private server: Server | undefined;
  private readonly connections = new Set<Connection>();
  /** Open connections holding no allocation, by cap address (the per-IP cap). */
  private readonly unauthenticated = new PerIpCap<Connection>();
  private sweepTimer: NodeJS.Timeout | undefined;

  constructor(options: StreamListenerOptions, core: StunCore, log: Logger, sessions?: StreamSessions) {
    this.options = options;
    this.core = core;
    this.sessions = sessions;
    const kind = options.tls === undefined ? 'tcp' : options.plain ? 'tcp+tls' : 'tls';
    this.log = log.child({ listener: `${kind}:${options.address}:${options.port}` });
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  /** Open connections from `ip` (a cap address) that hold no allocation. */
  unauthenticatedCount(ip: string): number {
    return this.unauthenticated.count(ip);
  }

  /** Source IPs with at least one unauthenticated connection (per-IP entries held). */
  get trackedIpCount(): number {
    return this.unauthenticated.ipCount;
  }

  async start(): Promise<void> {
    const server = createServer({ noDelay: true, keepAlive: false });
    server.on('connection', (socket) => this.onConnection(socket));
    const kind = this.options.tls === undefined ? 'TCP' : this.options.plain ? 'TCP/TLS' : 'TLS';
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => {
        reject(
          new BindError(
            `cannot listen on ${kind} ${this.options.address}:${this.options.port}: ${err.message}`,
            {
              cause: err,
            },
          ),
        );
      };
      server.once('error', onError);
      const isV6 = this.options.address.includes(':');
      server.listen(
        { host: this.options.address, port: this.options.port, ipv6Only: isV6, backlog: 511 },
        () => {
          server.off('error', onError);
          resolve();
        },
      );
    });
    server.on('error', (err) => this.log.error({ err: err.message }, 'listener error'));
    this.server = server;
    const shortest = Math.min(
      this.options.frameTimeoutMs,
      this.options.idleTimeoutMs,
      this.options.tls?.handshakeTimeoutMs ?? Number.POSITIVE_INFINITY,
    );
    this.sweepTimer = setInterval(
      () => this.sweep(Date.now()),
      Math.max(50, Math.min(1000, Math.floor(shortest / 4))),
    );
    this.sweepTimer.unref();
  }

  private onConnection(socket: Socket): void {
    const nowMs = Date.now();
    const conn = new Connection(
      socket,
      new StreamFramer(this.options.maxFrameBytes, this.core.legacyChannels),
      this,
      nowMs,
    );
    socket.on('error', () => {
      // Resets and timeouts of one client are routine; 'close' follows.
    });
    const budget = this.options.budget;
    if (budget.open >= budget.max) {
      this.core.stats.streamRefused++;
      socket.destroy();
      return;
    }
    budget.open++;
    this.connections.add(conn);
    this.countUnauthenticated(conn);
    this.core.stats.streamAccepted++;
    socket.on('close', () => this.onClose(conn));
    if (this.options.proxyProtocol) {
      conn.state = ConnState.Proxy;
      const onProxyData = (chunk: Buffer): void => {
        conn.proxyBuf = conn.proxyBuf === undefined ? chunk : Buffer.concat([conn.proxyBuf, chunk]);
        const r = parseProxyHeader(conn.proxyBuf);
        if (r.state === 'incomplete') return;
        socket.off('data', onProxyData);
        if (r.state === 'invalid') {
          this.core.stats.streamClosedBadFrame++;
          socket.destroy();
          return;
        }
        const rest = conn.proxyBuf.subarray(r.length);
        conn.proxyBuf = undefined;
        if (r.source !== undefined) {
          conn.remoteAddress = unmapped(r.source.address);
          conn.remotePort = r.source.port;
        }
        socket.pause();
        if (rest.length > 0) socket.unshift(rest);
        this.afterProxy(conn);
        // A TLSSocket now owns the socket (and read what was unshifted): resuming the plain stream
        // would steal its bytes.
        if (conn.transport !== 'tls') socket.resume();
      };
      socket.on('data', onProxyData);
    } else {
      this.afterProxy(conn);
    }
  }

  /** Starts TLS or STUN framing on the connection: as configured, or by its first byte when both are served. */
  private afterProxy(conn: Connection): void {
    const tls = this.options.tls;
    if (tls === undefined) {
      this.startPlain(conn);
      return;
    }
    if (!this.options.plain) {
      this.startTls(conn, tls);
      return;
    }
    // Both: wait for the first byte (the handshake timeout covers a client that sends nothing).
    conn.state = ConnState.Handshake;
    conn.openedAtMs = Date.now();
    const raw = conn.raw;
    const onFirst = (chunk: Buffer): void => {
      if (chunk.length === 0) return;
      raw.off('data', onFirst);
      raw.pause();
      raw.unshift(chunk);
      if (chunk[0] === TLS_HANDSHAKE_RECORD) {
        this.startTls(conn, tls); // the TLSSocket reads the unshifted bytes itself; raw stays paused
      } else {
        this.startPlain(conn);
        raw.resume();
      }
    };
    raw.on('data', onFirst);
  }

  private startPlain(conn: Connection): void {
    conn.state = ConnState.Open;
    conn.lastMessageAtMs = Date.now();
    conn.stream.on('data', (chunk: Buffer) => this.onData(conn, chunk));
  }

  private startTls(conn: Connection, tls: NonNullable<StreamListenerOptions['tls']>): void {
    conn.transport = 'tls';
    conn.state = ConnState.Handshake;
    conn.openedAtMs = Date.now();
    // Buffered bytes (unshifted after a PROXY header or the first-byte check) go to the TLS engine.
    const secure = new TLSSocket(conn.raw, {
      isServer: true,
      secureContext: tls.context(),
      ALPNProtocols: ['stun.turn'],
      requestCert: false,
    });
    conn.stream = secure;
    secure.on('error', (err: Error) => {
      this.log.debug({ err: err.message, remote: conn.remoteAddress }, 'tls error');
      conn.raw.destroy();
    });
    secure.on('secure', () => {
      conn.state = ConnState.Open;
      conn.lastMessageAtMs = Date.now();
    });
    secure.on('data', (chunk: Buffer) => this.onData(conn, chunk));
    secure.on('close', () => conn.raw.destroy());
  }

  private onData(conn: Connection, chunk: Buffer): void {
    if (conn.isData) return; // the pipe carries it
    const err = conn.framer.push(chunk, (frame) => {
      conn.lastMessageAtMs = Date.now();
      // STUN or ChannelData (padding already stripped by the framer): the core demultiplexes.
      this.core.receive(frame, conn.remoteAddress, conn.remotePort, conn);
      if (conn.isData) return;
      // An Allocate adds the allocation (pending) before returning; a Refresh 0 deletes it; a
      // Refresh with an RFC 8016 ticket from another connection moves it there.
      const a = conn.allocation;
      if (a === undefined || a.deleted || a.endpoint !== conn)
        this.setAllocation(conn, this.lookUpAllocation(conn));
    });
    if (conn.isData) {
      // The rest of the read that carried the ConnectionBind goes to the peer before anything the
      // pipe reads next.
      const rest = conn.framer.takeRest();
      if (rest !== undefined) this.options.tcpRelays?.forward(conn.dataPeer!, conn.dataAllocation!, rest);
      return;
    }
    if (err !== null) {
      this.core.stats.streamClosedBadFrame++;
      this.log.debug({ reason: err, remote: conn.remoteAddress }, 'closing stream: bad frame');
      conn.raw.destroy();
      return;
    }
    if (conn.framer.buffered === 0) conn.midFrameSinceMs = 0;
    else if (conn.midFrameSinceMs === 0) conn.midFrameSinceMs = Date.now();
  }

  /**
   * RFC 6062 §5.4: the ConnectionBind on `conn` succeeded: write `response`, stop reading STUN, and
   * pipe the connection to `peer`. Called while the framer hands out the ConnectionBind, so bytes
   * after it in the same read are taken from the framer and go to the peer first.
   */
  toDataConnection(conn: Connection, response: Buffer, peer: PeerConnection, c: TcpConnection): boolean {
    const relays = this.options.tcpRelays;
    if (conn.closed || conn.isData || relays === undefined || !(peer instanceof PeerSocket)) return false;
    conn.isData = true;
    conn.framer.stop();
    // Not an unauthenticated connection any more: the allocation's lifetime governs it.
    this.uncount(conn);
    relays.pipe(conn.stream, response, peer, c.allocation, undefined);
    conn.dataPeer = peer;
    conn.dataAllocation = c.allocation;
    return true;
  }

  /** Output budget: false (and a counted drop) when the client is not reading. */
  admit(conn: Connection, bytes: number): boolean {
    if (conn.closed) return false;
    if (conn.stream.writableLength + bytes > this.options.maxPendingWriteBytes) {
      this.core.stats.droppedBackpressure++;
      return false;
    }
    return true;
  }

  /** The allocation of the connection's 5-tuple in the TURN table (pending included). */
  private lookUpAllocation(conn: Connection): Allocation | undefined {
    return this.sessions?.findAllocation(conn, conn.remoteAddress, conn.remotePort);
  }

  /**
   * Records the connection's allocation (`a`, or none) and moves the connection out of, or back
   * into, the per-IP count of unauthenticated connections.
   */
  private setAllocation(conn: Connection, a: Allocation | undefined): void {
    if (conn.closed || conn.isData) return;
    conn.allocation = a;
    if (a !== undefined) this.uncount(conn);
    else if (!conn.counted) this.countUnauthenticated(conn);
  }

  /**
   * Counts `conn` as the newest unauthenticated connection of its IP; when the IP is at the cap,
   * its oldest unauthenticated connection is closed first.
   */
  private countUnauthenticated(conn: Connection): void {
    const oldest = this.unauthenticated.add(conn.capAddress, conn, this.options.maxConnectionsPerIp);
    conn.counted = true;
    if (oldest === undefined) return;
    oldest.counted = false;
    this.core.stats.streamEvicted++;
    this.log.debug(
      { remote: conn.capAddress },
      'closing the oldest unauthenticated connection of the IP: per-IP cap',
    );
    oldest.raw.destroy();
    this.onClose(oldest);
  }

  private uncount(conn: Connection): void {
    if (!conn.counted) return;
    conn.counted = false;
    this.unauthenticated.delete(conn.capAddress, conn);
  }

  private onClose(conn: Connection): void {
    if (conn.closed) return;
    conn.closed = true;
    this.connections.delete(conn);
    this.options.budget.open--;
    this.uncount(conn);
    conn.allocation = undefined;
    conn.framer.reset();
    // RFC 8656 §5: the allocation of a TCP/TLS connection ends with the connection.
    this.sessions?.endpointClosed(conn);
  }

  /**
   * Closes connections that stalled mid-message, idled without an allocation, or never finished TLS;
   * notices allocations that ended (expiry, Refresh 0, a failed relay bind) under a connection that
   * stays open, which then counts against the per-IP cap again.
   */
  sweep(nowMs: number): void {
    const { frameTimeoutMs, idleTimeoutMs } = this.options;
    const handshakeMs = this.options.tls?.handshakeTimeoutMs ?? Number.POSITIVE_INFINITY;
    // Deleting from a Set while iterating it is safe: connections closed here (or evicted by
    // setAllocation) and not yet visited are skipped.
    for (const conn of this.connections) {
      let expired: boolean;
      if (conn.isData) continue; // a pipe: it lives as long as its allocation and its peer
      if (conn.state !== ConnState.Open) {
        // PROXY header or TLS handshake still incomplete.
        expired = nowMs - conn.openedAtMs >= Math.min(handshakeMs, frameTimeoutMs);
      } else if (conn.midFrameSinceMs !== 0 && nowMs - conn.midFrameSinceMs >= frameTimeoutMs) {
        expired = true;
      } else {
        let a = conn.allocation;
        // Gone, or moved to another connection (RFC 8016): this one may hold none now.
        if (a === undefined || a.deleted || a.endpoint !== conn) a = this.lookUpAllocation(conn);
        expired = a === undefined && nowMs - conn.lastMessageAtMs >= idleTimeoutMs;
        if (!expired) this.setAllocation(conn, a);
      }
      if (expired) {
        this.core.stats.streamClosedTimeout++;
        conn.raw.destroy();
        this.onClose(conn);
      }
    }
  }

  address(): { address: string; port: number } {
    const a = this.server!.address();
    if (a === null || typeof a === 'string') throw new Error('not listening');
    return { address: a.address, port: a.port };
  }

  async close(): Promise<void> {
    if (this.sweepTimer !== undefined) clearInterval(this.sweepTimer);
    const server = this.server;
    if (server === undefined) return;
    this.server = undefined;
    for (const conn of [...this.connections]) {
      conn.raw.destroy();
      this.onClose(conn);
    }
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
