/**
 * One UDP socket serving STUN on one local address. The message handler is the hot path: it
 * demultiplexes by first byte, hands STUN to the sans-I/O core and sends back what the core
 * returns. Nothing here allocates per datagram beyond what `dgram` and the response need.
 */
import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { channelDataLength } from '../core/channel-data.js';
import { CHANNEL_MAX } from '../core/constants.js';
import { classify, PacketKind } from '../core/demux.js';
import type { StunCore } from '../core/stun-core.js';
import type { ClientEndpoint } from '../core/turn/allocation.js';
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
    socket.on('message', (msg, rinfo) => this.onMessage(msg, rinfo));
    this.socket = socket;
  }

  private onMessage(msg: Buffer, rinfo: RemoteInfo): void {
    if (msg.length === 0) return;
    const core = this.core;
    const kind = classify(msg[0]!, core.maxChannel > CHANNEL_MAX);
    if (kind === PacketKind.ChannelData) {
      // Hot path: client → peer over a channel. No object is built here.
      const turn = core.turn;
      const len = channelDataLength(msg, core.maxChannel);
      const a = turn === undefined || len < 0 ? undefined : turn.table.find(this, rinfo.address, rinfo.port);
      if (a === undefined) this.core.stats.droppedNoAllocation++;
      else turn!.relayChannelData(a, msg, len);
    } else if (kind === PacketKind.Stun) {
      const out = this.core.handle(msg, rinfo.address, rinfo.port, this);
      if (out !== null) this.socket!.send(out, rinfo.port, rinfo.address);
    } else {
      this.core.stats.droppedMalformed++;
    }
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
