/**
 * One UDP socket serving STUN and TURN on one local address: every datagram goes to the core's
 * `receive` (which demultiplexes STUN and ChannelData), and the core answers through `send`.
 * Nothing here allocates per datagram beyond what `dgram` does.
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import type { StunCore } from '../core/stun-core.js';
import type { ClientEndpoint } from '../core/transport.js';
import { BindError } from '../errors.js';
import type { Logger } from '../log.js';
import { ipLiteralLookup } from './ip-lookup.js';

export interface UdpListenerOptions {
  readonly address: string;
  readonly port: number;
  /** SO_RCVBUF/SO_SNDBUF in bytes; 0 keeps the OS default. */
  readonly sockBufSize: number;
}

export class UdpListener implements ClientEndpoint {
  readonly transport = 'udp' as const;
  readonly options: UdpListenerOptions;
  private readonly core: StunCore;
  private readonly log: Logger;
  private socket: Socket | undefined;

  constructor(options: UdpListenerOptions, core: StunCore, log: Logger) {
    this.options = options;
    this.core = core;
    this.log = log.child({ listener: `udp:${options.address}:${options.port}` });
  }

  /** Binds the socket. Rejects with a BindError naming the address when it cannot. */
  async start(): Promise<void> {
    const isV6 = this.options.address.includes(':');
    const socket = createSocket({ type: isV6 ? 'udp6' : 'udp4', ipv6Only: isV6, lookup: ipLiteralLookup });
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => {
        socket.close();
        reject(
          new BindError(`cannot bind UDP ${this.options.address}:${this.options.port}: ${err.message}`, {
            cause: err,
          }),
        );
      };
      socket.once('error', onError);
      socket.bind({ address: this.options.address, port: this.options.port, exclusive: true }, () => {
        socket.off('error', onError);
        resolve();
      });
    });
    if (this.options.sockBufSize > 0) {
      socket.setRecvBufferSize(this.options.sockBufSize);
      socket.setSendBufferSize(this.options.sockBufSize);
    }
    socket.on('error', (err) => {
      // Send failures (ICMP unreachable reported as ECONNREFUSED, ENOBUFS) must not stop the listener.
      this.log.debug({ err: err.message }, 'udp socket error');
    });
    const core = this.core;
    socket.on('message', (msg: Buffer, rinfo: RemoteInfo) =>
      core.receive(msg, rinfo.address, rinfo.port, this),
    );
    this.socket = socket;
  }

  /** ClientEndpoint: one datagram to a client. */
  send(buf: Buffer, address: string, port: number): void {
    this.socket?.send(buf, port, address);
  }

  /** ClientEndpoint: the buffers go out as one datagram (scatter/gather, no copy). */
  sendv(bufs: readonly Buffer[], address: string, port: number): void {
    this.socket?.send(bufs as Buffer[], port, address);
  }

  /** The bound address and port (port 0 in the options picks a free one). */
  address(): { address: string; port: number } {
    const a = this.socket!.address();
    return { address: a.address, port: a.port };
  }

  async close(): Promise<void> {
    const s = this.socket;
    if (s === undefined) return;
    this.socket = undefined;
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}
