/**
 * The probe's client side of one STUN/TURN connection: a connected UDP socket, or a TCP/TLS stream
 * framed per RFC 8656 §12.5. Requests are matched to responses by transaction ID; over UDP they are
 * retransmitted on the RFC 8489 §6.2.1 schedule (RTO doubling) until the deadline. ChannelData the
 * server sends is queued for `nextChannelData`.
 *
 * Failures are values (`Outcome`), each with what the operator needs to read: a timeout, an ICMP
 * port unreachable (a connected UDP socket reports it as ECONNREFUSED), a refused or reset
 * connection, a TLS error.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { connect as netConnect, type Socket as TcpSocket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { ipVersion } from '../core/ip.js';
import { StreamFramer } from '../core/stream-framer.js';
import type { ProbeTransport } from './uri.js';

/** How a request ended. */
export type Outcome =
  | {
      readonly kind: 'response';
      readonly buf: Buffer;
      readonly rttMs: number;
      readonly transmissions: number;
    }
  | { readonly kind: 'timeout'; readonly transmissions: number }
  | { readonly kind: 'error'; readonly code: string; readonly message: string };

/** Why a connection could not be set up. */
export interface ConnectFailure {
  readonly code: string;
  readonly message: string;
}

export interface ConnectOptions {
  readonly transport: ProbeTransport;
  /** Server IP address (resolved). */
  readonly address: string;
  readonly port: number;
  /** Name for TLS SNI and certificate checks. */
  readonly serverName: string;
  readonly timeoutMs: number;
  /** Initial RTO for UDP retransmissions. */
  readonly rtoMs: number;
  /** Skip TLS certificate verification. */
  readonly insecure: boolean;
}

interface Waiter {
  readonly resolve: (o: Outcome) => void;
  readonly sentAt: number;
  transmissions: number;
}

const tidOf = (buf: Buffer): string => buf.toString('hex', 8, 20);

export class ProbeConnection {
  readonly transport: ProbeTransport;
  readonly localAddress: string;
  readonly localPort: number;
  private readonly udp: UdpSocket | undefined;
  private readonly stream: TcpSocket | undefined;
  private readonly rtoMs: number;
  private readonly waiters = new Map<string, Waiter>();
  private readonly channelQueue: Buffer[] = [];
  private channelWaiter: ((b: Buffer | undefined) => void) | undefined;
  /** The first socket error (ICMP unreachable, reset), reported to the pending and next requests. */
  private failure: ConnectFailure | undefined;
  private closed = false;

  private constructor(
    transport: ProbeTransport,
    socket: { udp: UdpSocket } | { stream: TcpSocket },
    rtoMs: number,
  ) {
    this.transport = transport;
    this.rtoMs = rtoMs;
    if ('udp' in socket) {
      this.udp = socket.udp;
      this.stream = undefined;
      const a = socket.udp.address();
      this.localAddress = a.address;
      this.localPort = a.port;
      socket.udp.on('message', (msg) => this.onMessage(msg));
      socket.udp.on('error', (err: NodeJS.ErrnoException) => this.fail(asFailure(err)));
    } else {
      this.udp = undefined;
      this.stream = socket.stream;
      this.localAddress = socket.stream.localAddress ?? '';
      this.localPort = socket.stream.localPort ?? 0;
      const framer = new StreamFramer(65540, true);
      socket.stream.on('data', (chunk: Buffer) => {
        const bad = framer.push(chunk, (frame) => this.onMessage(Buffer.from(frame)));
        if (bad !== null) {
          this.fail({ code: 'EPROTO', message: `the server sent bytes that are not STUN (${bad})` });
        }
      });
      socket.stream.on('error', (err: NodeJS.ErrnoException) => this.fail(asFailure(err)));
      socket.stream.on('close', () =>
        this.fail({ code: 'ECONNRESET', message: 'the server closed the connection' }),
      );
    }
  }

  /** Opens the connection (UDP: binds and connects; TCP/TLS: connects, handshakes). */
  static async open(o: ConnectOptions): Promise<ProbeConnection | ConnectFailure> {
    if (o.transport === 'udp') {
      const v6 = o.address.includes(':');
      const udp = createSocket({ type: v6 ? 'udp6' : 'udp4' });
      const ok = await new Promise<ConnectFailure | undefined>((resolve) => {
        udp.once('error', (err: NodeJS.ErrnoException) => resolve(asFailure(err)));
        udp.connect(o.port, o.address, () => resolve(undefined));
      });
      if (ok !== undefined) {
        udp.close();
        return ok;
      }
      udp.removeAllListeners('error');
      return new ProbeConnection('udp', { udp }, o.rtoMs);
    }
    return new Promise<ProbeConnection | ConnectFailure>((resolve) => {
      const stream =
        o.transport === 'tls'
          ? tlsConnect({
              host: o.address,
              port: o.port,
              // SNI carries names only (RFC 6066 §3).
              ...(ipVersion(o.serverName) === 0 ? { servername: o.serverName } : {}),
              rejectUnauthorized: !o.insecure,
              ALPNProtocols: ['stun.turn'],
              // node:tls asserts this is a function when the key is present.
              ...(o.insecure ? { checkServerIdentity: () => undefined } : {}),
            })
          : netConnect({ host: o.address, port: o.port });
      const timer = setTimeout(() => {
        stream.destroy();
        resolve({
          code: 'ETIMEDOUT',
          message: `no ${o.transport === 'tls' ? 'TLS handshake' : 'TCP connection'} within ${o.timeoutMs} ms`,
        });
      }, o.timeoutMs);
      const onError = (err: NodeJS.ErrnoException): void => {
        clearTimeout(timer);
        stream.destroy();
        resolve(asFailure(err));
      };
      stream.once('error', onError);
      stream.once(o.transport === 'tls' ? 'secureConnect' : 'connect', () => {
        clearTimeout(timer);
        stream.off('error', onError);
        stream.setNoDelay(true);
        resolve(new ProbeConnection(o.transport, { stream }, o.rtoMs));
      });
    });
  }

  /** Sends a request and waits for the response with its transaction ID, until `timeoutMs`. */
  request(raw: Buffer, timeoutMs: number): Promise<Outcome> {
    if (this.failure !== undefined) {
      return Promise.resolve({ kind: 'error', code: this.failure.code, message: this.failure.message });
    }
    const tid = tidOf(raw);
    return new Promise<Outcome>((resolve) => {
      const deadline = Date.now() + timeoutMs;
      let timer: NodeJS.Timeout | undefined;
      const waiter: Waiter = {
        sentAt: performance.now(),
        transmissions: 0,
        resolve: (o) => {
          clearTimeout(timer);
          this.waiters.delete(tid);
          resolve(o);
        },
      };
      this.waiters.set(tid, waiter);
      const fire = (rto: number): void => {
        waiter.transmissions++;
        this.write(raw);
        const left = deadline - Date.now();
        if (left <= 0) {
          waiter.resolve({ kind: 'timeout', transmissions: waiter.transmissions });
          return;
        }
        // Streams are reliable: one transmission, then wait for the deadline.
        if (this.udp === undefined || rto >= left) {
          timer = setTimeout(
            () => waiter.resolve({ kind: 'timeout', transmissions: waiter.transmissions }),
            left,
          );
        } else {
          timer = setTimeout(() => fire(rto * 2), rto);
        }
      };
      fire(this.rtoMs);
    });
  }

  /** Sends bytes as they are (ChannelData; padded by the caller over streams). */
  write(buf: Buffer): void {
    if (this.closed) return;
    if (this.udp !== undefined) this.udp.send(buf);
    else this.stream?.write(buf);
  }

  /** The next ChannelData message from the server, or undefined after `timeoutMs`. */
  nextChannelData(timeoutMs: number): Promise<Buffer | undefined> {
    const queued = this.channelQueue.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.channelWaiter = undefined;
        resolve(undefined);
      }, timeoutMs);
      this.channelWaiter = (b) => {
        clearTimeout(timer);
        this.channelWaiter = undefined;
        resolve(b);
      };
    });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const w of [...this.waiters.values()])
      w.resolve({ kind: 'error', code: 'ECLOSED', message: 'closed' });
    this.channelWaiter?.(undefined);
    if (this.udp !== undefined) this.udp.close();
    this.stream?.destroy();
  }

  private onMessage(msg: Buffer): void {
    if (msg.length < 4) return;
    const first = msg[0]!;
    if (first < 4) {
      if (msg.length < 20) return;
      const w = this.waiters.get(tidOf(msg));
      if (w === undefined) return; // late duplicate or stray
      w.resolve({
        kind: 'response',
        buf: msg,
        rttMs: performance.now() - w.sentAt,
        transmissions: w.transmissions,
      });
    } else if (first >= 64 && first <= 127) {
      // ChannelData: the header plus as many bytes as its length field says (UDP may carry padding).
      const data = msg.subarray(0, Math.min(msg.length, 4 + msg.readUInt16BE(2)));
      if (this.channelWaiter !== undefined) this.channelWaiter(data);
      else if (this.channelQueue.length < 64) this.channelQueue.push(data);
    }
  }

  private fail(f: ConnectFailure): void {
    if (this.closed || this.failure !== undefined) return;
    this.failure = f;
    for (const w of [...this.waiters.values()])
      w.resolve({ kind: 'error', code: f.code, message: f.message });
  }
}

function asFailure(err: NodeJS.ErrnoException): ConnectFailure {
  return { code: err.code ?? 'EIO', message: err.message };
}
