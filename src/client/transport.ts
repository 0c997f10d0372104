/**
 * Thin socket transports for the client: a UDP socket (connected, so that an ICMP port unreachable
 * is reported as ECONNREFUSED, or unconnected, for tests that send from one socket to several
 * ports), and a TCP or TLS stream framed per RFC 8656 §12.5 with the core's `StreamFramer`
 * (STUN messages and ChannelData padded to 4 bytes). Each hands whole messages to one receiver.
 *
 * A transport that owns no socket (the load tool drives its own) implements `ClientTransport`
 * with a `send` function and calls the receiver itself.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { connect as netConnect, type Socket as TcpSocket } from 'node:net';
import { type TLSSocket, connect as tlsConnect } from 'node:tls';
import { ipVersion } from '../core/ip.js';
import { StreamFramer } from '../core/stream-framer.js';

export type TransportKind = 'udp' | 'tcp' | 'tls';

/** Why a transport failed or could not be opened: an errno-style code and a message. */
export interface TransportFailure {
  readonly code: string;
  readonly message: string;
}

/** Where a transport delivers what it receives. */
export interface Receiver {
  /** One whole message: a datagram, or one framed STUN/ChannelData message (padding stripped). */
  message(buf: Buffer): void;
  /** The transport cannot carry the transaction any more (ICMP unreachable, reset, close, garbage). */
  failed(failure: TransportFailure): void;
}

export interface ClientTransport {
  readonly kind: TransportKind;
  readonly localAddress: string;
  readonly localPort: number;
  /** Sets the one receiver (the client calls it once). */
  attach(receiver: Receiver): void;
  /** Sends one message to the server as it is (ChannelData over streams must be padded). */
  send(buf: Buffer): void;
  close(): Promise<void>;
}

/** An errno-style failure from a Node error. */
export function asFailure(err: NodeJS.ErrnoException): TransportFailure {
  return { code: err.code ?? 'EIO', message: err.message };
}

/** Thrown by `open*` when the transport cannot be set up; `code` as in `TransportFailure`. */
export class TransportError extends Error implements TransportFailure {
  readonly code: string;
  constructor(f: TransportFailure) {
    super(f.message);
    this.name = 'TransportError';
    this.code = f.code;
  }
}

const NO_RECEIVER: Receiver = { message: () => {}, failed: () => {} };

export interface UdpOptions {
  /** The server. */
  readonly address: string;
  readonly port: number;
  /** Local address to bind (default: any). */
  readonly localAddress?: string;
  /** connect() the socket: only the server's datagrams arrive, and ICMP errors are reported. */
  readonly connect?: boolean;
  /** SO_RCVBUF, bytes. */
  readonly receiveBufferBytes?: number;
}

export class UdpTransport implements ClientTransport {
  readonly kind = 'udp';
  readonly socket: UdpSocket;
  readonly address: string;
  readonly port: number;
  private readonly connected: boolean;
  private receiver: Receiver = NO_RECEIVER;

  private constructor(socket: UdpSocket, o: UdpOptions) {
    this.socket = socket;
    this.address = o.address;
    this.port = o.port;
    this.connected = o.connect === true;
    socket.on('message', (msg) => this.receiver.message(msg));
    socket.on('error', (err: NodeJS.ErrnoException) => {
      // An unconnected socket's errors concern one datagram (a retransmission covers it); a
      // connected one's (ICMP port unreachable) concern the server.
      if (this.connected) this.receiver.failed(asFailure(err));
    });
  }

  /** Binds (and connects) a UDP socket of the server's family. Throws a TransportError. */
  static async open(o: UdpOptions): Promise<UdpTransport> {
    const v6 = ipVersion(o.address) === 6;
    const socket = createSocket({ type: v6 ? 'udp6' : 'udp4', ipv6Only: v6 });
    const failure = await new Promise<TransportFailure | undefined>((resolve) => {
      socket.once('error', (err: NodeJS.ErrnoException) => resolve(asFailure(err)));
      const ready = (): void => resolve(undefined);
      if (o.connect === true && o.localAddress === undefined) socket.connect(o.port, o.address, ready);
      else
        socket.bind(0, o.localAddress, () =>
          o.connect === true ? socket.connect(o.port, o.address, ready) : ready(),
        );
    });
    if (failure !== undefined) {
      socket.close();
      throw new TransportError(failure);
    }
    socket.removeAllListeners('error');
    if (o.receiveBufferBytes !== undefined) socket.setRecvBufferSize(o.receiveBufferBytes);
    return new UdpTransport(socket, o);
  }

  get localAddress(): string {
    return this.socket.address().address;
  }

  get localPort(): number {
    return this.socket.address().port;
  }

  attach(receiver: Receiver): void {
    this.receiver = receiver;
  }

  send(buf: Buffer): void {
    if (this.connected) this.socket.send(buf);
    else this.socket.send(buf, this.port, this.address);
  }

  /** Any datagram to any address (unconnected sockets); resolves once handed to the kernel. */
  sendTo(buf: Buffer, port: number, address: string): Promise<void> {
    return new Promise((resolve) => this.socket.send(buf, port, address, () => resolve()));
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      try {
        this.socket.close(() => resolve());
      } catch {
        resolve(); // already closed
      }
    });
  }
}

export interface StreamOptions {
  readonly kind: 'tcp' | 'tls';
  /** The server. */
  readonly address: string;
  readonly port: number;
  /** TLS: the name for SNI and the certificate check (default: `address`). */
  readonly serverName?: string;
  /** TLS: skip certificate verification. */
  readonly insecure?: boolean;
  /** Give up connecting (and handshaking) after this long, ms. */
  readonly timeoutMs?: number;
  /** Bytes written first on the TCP connection, before TLS starts (a PROXY protocol header). */
  readonly preamble?: Buffer;
  /** Largest message accepted from the server, bytes. */
  readonly maxFrameBytes?: number;
}

export class StreamTransport implements ClientTransport {
  readonly kind: 'tcp' | 'tls';
  readonly socket: TcpSocket | TLSSocket;
  /** Resolves when the connection is closed, by either side. */
  readonly closed: Promise<void>;
  private receiver: Receiver = NO_RECEIVER;
  private isClosing = false;

  private constructor(kind: 'tcp' | 'tls', socket: TcpSocket | TLSSocket, maxFrameBytes: number) {
    this.kind = kind;
    this.socket = socket;
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
    // RFC 5766 channel numbers (up to 0x7FFE) are framed too: an older server may use them.
    const framer = new StreamFramer(maxFrameBytes, true);
    const fail = (f: TransportFailure): void => {
      if (!this.isClosing) this.receiver.failed(f);
    };
    socket.on('data', (chunk: Buffer) => {
      const bad = framer.push(chunk, (frame) => this.receiver.message(Buffer.from(frame)));
      if (bad !== null) fail({ code: 'EPROTO', message: `the server sent bytes that are not STUN (${bad})` });
    });
    socket.on('error', (err: NodeJS.ErrnoException) => fail(asFailure(err)));
    socket.on('close', () => fail({ code: 'ECONNRESET', message: 'the server closed the connection' }));
  }

  /** Connects (and handshakes). Throws a TransportError (ETIMEDOUT after `timeoutMs`). */
  static async open(o: StreamOptions): Promise<StreamTransport> {
    let under: TcpSocket | undefined;
    if (o.preamble !== undefined && o.kind === 'tls') {
      const tcp = netConnect({ host: o.address, port: o.port });
      under = tcp;
      await settle(tcp, 'connect', 'TCP connection', o.timeoutMs);
      tcp.write(o.preamble);
    }
    const name = o.serverName ?? o.address;
    const socket =
      o.kind === 'tls'
        ? tlsConnect({
            ...(under === undefined ? { host: o.address, port: o.port } : { socket: under }),
            // SNI carries names only (RFC 6066 §3).
            ...(ipVersion(name) === 0 ? { servername: name } : {}),
            rejectUnauthorized: o.insecure !== true,
            ALPNProtocols: ['stun.turn'],
            // node:tls asserts this is a function when the key is present.
            ...(o.insecure === true ? { checkServerIdentity: () => undefined } : {}),
          })
        : netConnect({ host: o.address, port: o.port });
    await settle(socket, o.kind === 'tls' ? 'secureConnect' : 'connect', handshakeName(o.kind), o.timeoutMs);
    if (o.preamble !== undefined && under === undefined) socket.write(o.preamble);
    socket.setNoDelay(true);
    return new StreamTransport(o.kind, socket, o.maxFrameBytes ?? 65540);
  }

  get localAddress(): string {
    return this.socket.localAddress ?? '';
  }

  get localPort(): number {
    return this.socket.localPort ?? 0;
  }

  attach(receiver: Receiver): void {
    this.receiver = receiver;
  }

  send(buf: Buffer): void {
    if (!this.isClosing) this.socket.write(buf);
  }

  close(): Promise<void> {
    this.isClosing = true;
    this.socket.destroy();
    return this.closed;
  }
}

const handshakeName = (kind: 'tcp' | 'tls'): string => (kind === 'tls' ? 'TLS handshake' : 'TCP connection');

/** Waits for `event`; on an error or after `timeoutMs` destroys the socket and throws a TransportError. */
function settle(
  socket: TcpSocket | TLSSocket,
  event: 'connect' | 'secureConnect',
  what: string,
  timeoutMs: number | undefined,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const fail = (f: TransportFailure): void => {
      clearTimeout(timer);
      socket.destroy();
      reject(new TransportError(f));
    };
    const onError = (err: NodeJS.ErrnoException): void => fail(asFailure(err));
    const timer =
      timeoutMs === undefined
        ? undefined
        : setTimeout(
            () => fail({ code: 'ETIMEDOUT', message: `no ${what} within ${timeoutMs} ms` }),
            timeoutMs,
          );
    socket.once('error', onError);
    socket.once(event, () => {
      clearTimeout(timer);
      socket.off('error', onError);
      resolve();
    });
  });
}
