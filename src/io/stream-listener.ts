/**
 * STUN over TCP (RFC 8489 §6.2.2) with RFC 8656 §12.5 framing. Each connection owns a
 * StreamFramer; limits protect the process from any single client:
 *  - a cap on concurrent connections (further ones are refused at accept);
 *  - an idle timeout: a connection that completes no message for `idleTimeoutMs` is closed;
 *  - a frame timeout: a connection that stops in the middle of a message is closed after
 *    `frameTimeoutMs`, however recently it sent its last byte;
 *  - a maximum frame size, and garbage at a message boundary closes the connection;
 *  - an output budget: responses to a client that does not read are dropped, not buffered.
 * Timeouts are checked by one coarse sweep per listener, not by a timer per connection.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { CHANNEL_MAX } from '../core/constants.js';
import { PacketKind } from '../core/demux.js';
import { StreamFramer } from '../core/stream-framer.js';
import type { StunCore } from '../core/stun-core.js';
import { BindError } from '../errors.js';
import type { Logger } from '../log.js';

export interface StreamListenerOptions {
  readonly address: string;
  readonly port: number;
  readonly maxConnections: number;
  readonly idleTimeoutMs: number;
  readonly frameTimeoutMs: number;
  readonly maxFrameBytes: number;
  /** Bytes that may wait in a connection's send buffer before further responses are dropped. */
  readonly maxPendingWriteBytes: number;
}

class Connection {
  readonly socket: Socket;
  readonly framer: StreamFramer;
  readonly remoteAddress: string;
  readonly remotePort: number;
  /** When the last complete message arrived (or the connection opened). */
  lastMessageAtMs: number;
  /** When the current incomplete message started, or 0. */
  midFrameSinceMs = 0;

  constructor(socket: Socket, maxFrameBytes: number, legacyChannels: boolean, nowMs: number) {
    this.socket = socket;
    this.framer = new StreamFramer(maxFrameBytes, legacyChannels);
    this.remoteAddress = socket.remoteAddress ?? '';
    this.remotePort = socket.remotePort ?? 0;
    this.lastMessageAtMs = nowMs;
  }
}

export class StreamListener {
  readonly options: StreamListenerOptions;
  private readonly core: StunCore;
  private readonly log: Logger;
  private server: Server | undefined;
  private readonly connections = new Set<Connection>();
  private sweepTimer: NodeJS.Timeout | undefined;

  constructor(options: StreamListenerOptions, core: StunCore, log: Logger) {
    this.options = options;
    this.core = core;
    this.log = log.child({ listener: `tcp:${options.address}:${options.port}` });
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  async start(): Promise<void> {
    const server = createServer({ noDelay: true, keepAlive: false });
    server.maxConnections = this.options.maxConnections;
    server.on('drop', () => {
      this.core.stats.streamRefused++;
    });
    server.on('connection', (socket) => this.onConnection(socket));
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => {
        reject(
          new BindError(`cannot listen on TCP ${this.options.address}:${this.options.port}: ${err.message}`, {
            cause: err,
          }),
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
    server.on('error', (err) => this.log.error({ err: err.message }, 'tcp listener error'));
    this.server = server;
    const period = Math.max(
      50,
      Math.min(1000, Math.floor(Math.min(this.options.frameTimeoutMs, this.options.idleTimeoutMs) / 4)),
    );
    this.sweepTimer = setInterval(() => this.sweep(Date.now()), period);
    this.sweepTimer.unref();
  }

  private onConnection(socket: Socket): void {
    const conn = new Connection(
      socket,
      this.options.maxFrameBytes,
      this.core.maxChannel > CHANNEL_MAX,
      Date.now(),
    );
    this.connections.add(conn);
    this.core.stats.streamAccepted++;
    socket.on('data', (chunk: Buffer) => this.onData(conn, chunk));
    socket.on('error', () => {
      // Resets and timeouts of one client are routine; 'close' follows.
    });
    socket.on('close', () => {
      this.connections.delete(conn);
      conn.framer.reset();
    });
  }

  private onData(conn: Connection, chunk: Buffer): void {
    const err = conn.framer.push(chunk, (frame, kind) => {
      conn.lastMessageAtMs = Date.now();
      if (kind === PacketKind.Stun) {
        const out = this.core.handle(frame, conn.remoteAddress, conn.remotePort);
        if (out !== null) this.write(conn, out);
      } else {
        this.core.stats.droppedMalformed++; // ChannelData with no allocation on this connection
      }
    });
    if (err !== null) {
      this.core.stats.streamClosedBadFrame++;
      this.log.debug({ reason: err, remote: conn.remoteAddress }, 'closing stream: bad frame');
      conn.socket.destroy();
      return;
    }
    if (conn.framer.buffered === 0) conn.midFrameSinceMs = 0;
    else if (conn.midFrameSinceMs === 0) conn.midFrameSinceMs = Date.now();
  }

  private write(conn: Connection, out: Buffer): void {
    if (conn.socket.writableLength > this.options.maxPendingWriteBytes) {
      this.core.stats.droppedBackpressure++;
      return;
    }
    conn.socket.write(out);
  }

  /** Closes connections that stalled mid-message or stayed idle too long. */
  sweep(nowMs: number): void {
    const { frameTimeoutMs, idleTimeoutMs } = this.options;
    for (const conn of this.connections) {
      const stalled = conn.midFrameSinceMs !== 0 && nowMs - conn.midFrameSinceMs >= frameTimeoutMs;
      if (stalled || nowMs - conn.lastMessageAtMs >= idleTimeoutMs) {
        this.core.stats.streamClosedTimeout++;
        this.connections.delete(conn);
        conn.socket.destroy();
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
    for (const conn of this.connections) conn.socket.destroy();
    this.connections.clear();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
