/**
 * A plain UDP socket standing in for a TURN peer (RFC 8656 §2: the far end of the relay): the probe
 * sends ChannelData through the relay to it and it echoes; tests read what it received.
 */
import { createSocket, type Socket } from 'node:dgram';
import { ipVersion } from '../core/ip.js';
import { Inbox } from './inbox.js';
import type { PeerAddress } from './messages.js';

/** A datagram the peer received. */
export interface PeerPacket {
  readonly data: Buffer;
  readonly from: PeerAddress;
}

export class UdpPeer {
  readonly socket: Socket;
  /** What arrived and was not taken yet (unbounded: a peer lives for one probe or one test). */
  private readonly inbox = new Inbox<PeerPacket>();
  /** Echo every datagram back to its sender. */
  echo = false;
  /** Called for every datagram, before it is queued. */
  onPacket: ((p: PeerPacket) => void) | undefined = undefined;
  private closed = false;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('error', () => {
      // ICMP errors from the relay side: what arrives (or not) tells the caller what it needs.
    });
    socket.on('message', (data, rinfo) => {
      if (this.echo) socket.send(data, rinfo.port, rinfo.address);
      const p: PeerPacket = { data, from: { address: rinfo.address, port: rinfo.port } };
      this.onPacket?.(p);
      this.inbox.push(p);
    });
  }

  /** Binds a socket on `address`:`port` (any free port by default). Throws the bind error. */
  static async bind(address = '127.0.0.1', port = 0): Promise<UdpPeer> {
    const v6 = ipVersion(address) === 6;
    const socket = createSocket({ type: v6 ? 'udp6' : 'udp4', ipv6Only: v6 });
    await new Promise<void>((resolve, reject) => {
      socket.once('error', (err) => {
        socket.close();
        reject(err);
      });
      socket.bind(port, address, () => {
        socket.removeAllListeners('error');
        resolve();
      });
    });
    return new UdpPeer(socket);
  }

  get address(): PeerAddress {
    const a = this.socket.address();
    return { address: a.address, port: a.port };
  }

  /** Sends `data` to `to`; resolves once handed to the kernel. */
  send(data: Buffer, to: PeerAddress): Promise<void> {
    return new Promise((resolve) => this.socket.send(data, to.port, to.address, () => resolve()));
  }

  /** The next datagram (queued ones first); rejects after `timeoutMs`. */
  async next(timeoutMs = 2000): Promise<PeerPacket> {
    const p = await this.inbox.next(timeoutMs);
    if (p === undefined) throw new Error(`peer received nothing within ${timeoutMs} ms`);
    return p;
  }

  /** Everything received within `ms` (plus what is queued). */
  collect(ms: number): Promise<PeerPacket[]> {
    return this.inbox.collect(ms);
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    this.inbox.close();
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }
}
