/**
 * The bare forwarder: the least a UDP TURN relay can do, written as plainly as Node allows, so it is
 * the ceiling of any pure-JS relay. `--self-test` drives it to find the tool's own limit, and
 * `bench:compare` measures it next to turnpike and coturn.
 *
 * It speaks just enough TURN for the load tool's code path to be the one it uses against a real
 * server: Allocate (no authentication, no lifetimes: an allocation lives until Refresh with LIFETIME 0
 * or exit), CreatePermission (accepted, not enforced), ChannelBind, Refresh, Binding, and Send/Data
 * indications. The data path is one Map lookup by client port and one send:
 *
 *   client socket ── ChannelData ──▶ byPort.get(rinfo.port) ──▶ relay.send(data, peer)
 *   relay socket (one per allocation, listener closes over it) ──▶ client.send([header, data])
 *
 * Sockets use a synchronous IP-literal lookup, as turnpike's do, so neither pays for dns.lookup.
 */
import type { RemoteInfo, Socket } from 'node:dgram';
import { AttrType, Class, Method } from '../core/constants.js';
import { readAddress, readChannelNumber, readUint32 } from '../core/stun/attrs.js';
import { decodeStunInto, StunView } from '../core/stun/decode.js';
import { StunWriter } from '../core/stun/encode.js';
import type { HostPort } from './types.js';
import { bindSocket, literalSocket } from './udp.js';

const MAX_ALLOCATIONS = 200_000;
const LIFETIME_SEC = 600;

class FwdAllocation {
  readonly clientAddress: string;
  readonly clientPort: number;
  relay: Socket | undefined;
  relayPort = 0;
  /** The first channel bound: the fast path (the load tool binds exactly one). */
  channel = -1;
  peerAddress = '';
  peerPort = 0;
  /** Further channels, by number, and the channel of each peer "address port". */
  readonly channels = new Map<number, HostPort>();
  readonly channelByPeer = new Map<string, number>();

  constructor(clientAddress: string, clientPort: number) {
    this.clientAddress = clientAddress;
    this.clientPort = clientPort;
  }
}

export class Forwarder {
  /** SO_RCVBUF/SO_SNDBUF of every socket; 0 keeps the OS default. */
  private readonly sockBufBytes: number;
  private socket: Socket | undefined;
  private address = '127.0.0.1';
  /** Allocations by client port, then checked against the client address (one host in practice). */
  private readonly byPort = new Map<number, FwdAllocation>();
  private readonly view = new StunView();
  private readonly writer = new StunWriter(256);
  /** Packets relayed each way (for a sanity check; plain counters). */
  relayedToPeer = 0;
  relayedToClient = 0;

  constructor(sockBufBytes = 0) {
    this.sockBufBytes = sockBufBytes;
  }

  private applyBuffers(socket: Socket): void {
    if (this.sockBufBytes <= 0) return;
    socket.setRecvBufferSize(this.sockBufBytes);
    socket.setSendBufferSize(this.sockBufBytes);
  }

  async listen(address: string, port: number): Promise<HostPort> {
    const socket = literalSocket(address);
    await bindSocket(socket, address, port);
    this.applyBuffers(socket);
    socket.on('error', () => {
      // ICMP errors for departed clients; nothing to do.
    });
    socket.on('message', (msg, rinfo) => this.onClient(msg, rinfo));
    this.socket = socket;
    this.address = address;
    const a = socket.address();
    return { address: a.address, port: a.port };
  }

  get allocations(): number {
    return this.byPort.size;
  }

  private onClient(msg: Buffer, rinfo: RemoteInfo): void {
    const b0 = msg[0];
    if (b0 === undefined) return;
    if ((b0 & 0xc0) === 0x40) {
      // Hot path: ChannelData from a client.
      const a = this.byPort.get(rinfo.port);
      if (a === undefined || a.relay === undefined || a.clientAddress !== rinfo.address || msg.length < 4)
        return;
      const len = msg.readUInt16BE(2);
      if (4 + len > msg.length) return;
      const ch = msg.readUInt16BE(0);
      if (ch === a.channel) {
        a.relay.send(msg.subarray(4, 4 + len), a.peerPort, a.peerAddress);
      } else {
        const peer = a.channels.get(ch);
        if (peer === undefined) return;
        a.relay.send(msg.subarray(4, 4 + len), peer.port, peer.address);
      }
      this.relayedToPeer++;
      return;
    }
    if (b0 < 4) this.onStun(msg, rinfo);
  }

  private onRelay(a: FwdAllocation, msg: Buffer, rinfo: RemoteInfo): void {
    const client = this.socket;
    if (client === undefined || msg.length > 0xffff) return;
    let ch = -1;
    if (rinfo.port === a.peerPort && rinfo.address === a.peerAddress) ch = a.channel;
    else if (a.channelByPeer.size > 0) ch = a.channelByPeer.get(`${rinfo.address} ${rinfo.port}`) ?? -1;
    if (ch >= 0) {
      const hdr = Buffer.allocUnsafe(4);
      hdr.writeUInt16BE(ch, 0);
      hdr.writeUInt16BE(msg.length, 2);
      client.send([hdr, msg], a.clientPort, a.clientAddress);
    } else {
      // Data indication (RFC 8656 §10.3): XOR-PEER-ADDRESS and DATA.
      const w = this.writer
        .start(Method.Data, Class.Indication, Buffer.alloc(12))
        .addAddress(AttrType.XorPeerAddress, rinfo.address, rinfo.port, true)
        .addBytes(AttrType.Data, msg);
      client.send(w.finish(), a.clientPort, a.clientAddress);
    }
    this.relayedToClient++;
  }

  private respond(request: Buffer, rinfo: RemoteInfo, build: (w: StunWriter) => void, error?: number): void {
    const v = this.view;
    const w = this.writer.startResponse(v.method, error === undefined ? Class.Success : Class.Error, request);
    if (error !== undefined) w.addErrorCode(error);
    else build(w);
    this.socket?.send(w.finish(), rinfo.port, rinfo.address);
  }

  private onStun(msg: Buffer, rinfo: RemoteInfo): void {
    const v = this.view;
    if (decodeStunInto(msg, v) !== null) return;
    const a = this.byPort.get(rinfo.port);
    const mine = a !== undefined && a.clientAddress === rinfo.address ? a : undefined;
    if (v.cls === Class.Indication) {
      if (v.method !== Method.Send || mine?.relay === undefined) return;
      const peer = readAddress(v, AttrType.XorPeerAddress);
      const i = v.find(AttrType.Data);
      if (peer === undefined || i < 0) return;
      mine.relay.send(v.value(i), peer.port, peer.address);
      this.relayedToPeer++;
      return;
    }
    if (v.cls !== Class.Request) return;
    const mapped = (w: StunWriter): void => {
      w.addAddress(AttrType.XorMappedAddress, rinfo.address, rinfo.port, true);
    };
    switch (v.method) {
      case Method.Binding:
        this.respond(msg, rinfo, mapped);
        return;
      case Method.Allocate:
        this.allocate(msg, rinfo, mine);
        return;
      case Method.CreatePermission:
        this.respond(msg, rinfo, () => {}, mine === undefined ? 437 : undefined);
        return;
      case Method.ChannelBind: {
        const ch = readChannelNumber(v);
        const peer = readAddress(v, AttrType.XorPeerAddress);
        if (mine === undefined || ch === undefined || peer === undefined) {
          this.respond(msg, rinfo, () => {}, mine === undefined ? 437 : 400);
          return;
        }
        if (mine.channel < 0 || mine.channel === ch) {
          mine.channel = ch;
          mine.peerAddress = peer.address;
          mine.peerPort = peer.port;
        } else {
          mine.channels.set(ch, { address: peer.address, port: peer.port });
          mine.channelByPeer.set(`${peer.address} ${peer.port}`, ch);
        }
        this.respond(msg, rinfo, () => {});
        return;
      }
      case Method.Refresh: {
        if (mine === undefined) {
          this.respond(msg, rinfo, () => {}, 437);
          return;
        }
        const lifetime = readUint32(v, AttrType.Lifetime) ?? LIFETIME_SEC;
        if (lifetime === 0) {
          mine.relay?.close();
          mine.relay = undefined;
          this.byPort.delete(rinfo.port);
        }
        this.respond(msg, rinfo, (w) => w.addUint32(AttrType.Lifetime, Math.min(lifetime, LIFETIME_SEC)));
        return;
      }
      default:
        this.respond(msg, rinfo, () => {}, 400);
    }
  }

  /** Allocate: a relay socket on the listening address and a free port. Retransmissions get the same. */
  private allocate(request: Buffer, rinfo: RemoteInfo, existing: FwdAllocation | undefined): void {
    const success = (a: FwdAllocation, req: Buffer): void => {
      const v = this.view;
      // respond() reads the method from the view; make sure it is the Allocate being answered.
      if (decodeStunInto(req, v) !== null) return;
      this.respond(req, rinfo, (w) => {
        w.addAddress(AttrType.XorRelayedAddress, this.address, a.relayPort, true);
        w.addAddress(AttrType.XorMappedAddress, rinfo.address, rinfo.port, true);
        w.addUint32(AttrType.Lifetime, LIFETIME_SEC);
      });
    };
    if (existing !== undefined) {
      if (existing.relay !== undefined) success(existing, request);
      return; // still binding: the retransmission will be answered by the next one
    }
    if (this.byPort.size >= MAX_ALLOCATIONS) {
      this.respond(request, rinfo, () => {}, 486);
      return;
    }
    const a = new FwdAllocation(rinfo.address, rinfo.port);
    this.byPort.set(rinfo.port, a);
    const req = Buffer.from(request); // the datagram is only ours during this callback
    const relay = literalSocket(this.address);
    relay.once('error', () => {
      relay.close();
      this.byPort.delete(rinfo.port);
      if (decodeStunInto(req, this.view) === null) this.respond(req, rinfo, () => {}, 508);
    });
    relay.bind({ address: this.address, port: 0, exclusive: true }, () => {
      relay.removeAllListeners('error');
      relay.on('error', () => {});
      this.applyBuffers(relay);
      a.relay = relay;
      a.relayPort = relay.address().port;
      relay.on('message', (msg, from) => this.onRelay(a, msg, from));
      success(a, req);
    });
  }

  async close(): Promise<void> {
    for (const a of this.byPort.values()) a.relay?.close();
    this.byPort.clear();
    const s = this.socket;
    this.socket = undefined;
    if (s !== undefined) await new Promise<void>((resolve) => s.close(() => resolve()));
  }
}

/** `turnpike-bench forwarder --listen IP:PORT [--sock-buf BYTES]`: runs until SIGTERM or SIGINT. */
export async function runForwarder(listen: HostPort, sockBufBytes = 0): Promise<number> {
  const f = new Forwarder(sockBufBytes);
  let bound: HostPort;
  try {
    bound = await f.listen(listen.address, listen.port);
  } catch (err) {
    process.stderr.write(
      `forwarder: cannot bind ${listen.address}:${listen.port}: ${(err as Error).message}\n`,
    );
    return 1;
  }
  const host = bound.address.includes(':') ? `[${bound.address}]` : bound.address;
  process.stdout.write(`listening ${host}:${bound.port}\n`);
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', () => resolve());
    process.once('SIGINT', () => resolve());
  });
  await f.close();
  return 0;
}
