/**
 * The JavaScript data plane: the `ForwardingTable` the core programs, and the hot paths that use
 * it — ChannelData from clients to peers, and peer datagrams to clients as ChannelData or Data
 * indications (RFC 8656 §10.3, §12.6). Per packet it builds no message object, closure or string
 * beyond the 4-byte ChannelData header or the Data-indication head it sends.
 *
 * State per allocation is one `Entry` (kept in `Allocation.dataPlaneState`, so a relay socket's
 * packet reaches it without a lookup): permissions (peer IP → expiry), channels by number and by
 * peer, and traffic counters. ChannelData from a client is found by its 5-tuple: a two-level Map
 * keyed by the address string Node already allocated for the datagram, then the numeric port.
 */
import { PADDING, streamPadding, writeChannelHeader } from '../channel-data.js';
import type { Clock } from '../clock.js';
import { CHANNEL_HEADER_LENGTH } from '../constants.js';
import type { Stats } from '../stats.js';
import type { ClientEndpoint, RelayAddressMap, RelayHandle } from '../transport.js';
import type { Allocation } from './allocation.js';
import { dataIndicationHead } from './data-indication.js';
import type {
  AllocationCounters,
  ChannelBinding,
  ClientDataSink,
  ForwardingTable,
  PeerDataSink,
} from './forwarding.js';
import {
  isWebRtcPayload,
  Limit,
  type LimitHit,
  NO_RELAY_LIMITS,
  RelayLimiter,
  type RelayLimitOptions,
  TokenBucket,
  type UserBudget,
} from './relay-limits.js';

class Channel implements ChannelBinding {
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

class Entry implements AllocationCounters {
  readonly allocation: Allocation;
  /** Peer IP (canonical text) → expiry (RFC 8656 §9). */
  readonly permissions = new Map<string, number>();
  readonly channelsByNumber = new Map<number, Channel>();
  /** Peer IP → peer port → channel, for the peer-to-client path. */
  readonly channelsByPeer = new Map<string, Map<number, Channel>>();
  packetsToPeer = 0;
  bytesToPeer = 0;
  packetsToClient = 0;
  bytesToClient = 0;
  payloadRefused = 0;
  bandwidthDropped = 0;
  /** The allocation's own bandwidth bucket (`max-bps`) and its user's (`user-max-bps`). */
  readonly bucket = new TokenBucket();
  readonly user: UserBudget;
  released = false;
  constructor(allocation: Allocation, user: UserBudget) {
    this.allocation = allocation;
    this.user = user;
  }
}

/** What `inspect` shows of one allocation. */
export interface ForwardingState extends AllocationCounters {
  readonly permissions: ReadonlyMap<string, number>;
  readonly channelsByNumber: ReadonlyMap<number, ChannelBinding>;
}

const NO_COUNTERS: AllocationCounters = Object.freeze({
  packetsToPeer: 0,
  bytesToPeer: 0,
  packetsToClient: 0,
  bytesToClient: 0,
  payloadRefused: 0,
  bandwidthDropped: 0,
});

const entryOf = (a: Allocation): Entry | undefined => a.dataPlaneState as Entry | undefined;

export interface JsDataPlaneOptions {
  readonly clock: Clock;
  readonly stats: Stats;
  /** The relay addresses behind 1:1 NAT (relay to relay goes to the local address directly). */
  readonly addresses: RelayAddressMap;
  /** The payload policy and bandwidth limits (default: none; `setLimits` changes them). */
  readonly limits?: RelayLimitOptions;
}

export class JsDataPlane implements ForwardingTable, ClientDataSink, PeerDataSink {
  private readonly clock: Clock;
  private readonly stats: Stats;
  private readonly addresses: RelayAddressMap;
  private readonly limiter: RelayLimiter;
  /** Client 5-tuple → entry: endpoint (listener or connection) → client IP → client port. */
  private readonly byClient = new Map<ClientEndpoint, Map<string, Map<number, Entry>>>();

  constructor(options: JsDataPlaneOptions) {
    this.clock = options.clock;
    this.stats = options.stats;
    this.addresses = options.addresses;
    this.limiter = new RelayLimiter(options.limits ?? NO_RELAY_LIMITS);
  }

  setLimits(options: RelayLimitOptions): void {
    this.limiter.configure(options);
  }

  // -------------------------------------------------------------------------------------------
  // ForwardingTable (programmed by the core)

  install(a: Allocation): void {
    const e = new Entry(a, this.limiter.acquire(a.userId));
    a.dataPlaneState = e;
    let ips = this.byClient.get(a.endpoint);
    if (ips === undefined) {
      ips = new Map();
      this.byClient.set(a.endpoint, ips);
    }
    let ports = ips.get(a.clientAddress);
    if (ports === undefined) {
      ports = new Map();
      ips.set(a.clientAddress, ports);
    }
    ports.set(a.clientPort, e);
  }

  move(a: Allocation, endpoint: ClientEndpoint, address: string, port: number): boolean {
    const e = entryOf(a);
    if (e === undefined) return false;
    this.unlinkClient(a, e);
    let ips = this.byClient.get(endpoint);
    if (ips === undefined) {
      ips = new Map();
      this.byClient.set(endpoint, ips);
    }
    let ports = ips.get(address);
    if (ports === undefined) {
      ports = new Map();
      ips.set(address, ports);
    }
    ports.set(port, e);
    return true;
  }

  /** Forgets the client 5-tuple of `a` (as its fields name it) in the lookup of ChannelData. */
  private unlinkClient(a: Allocation, e: Entry): void {
    const ips = this.byClient.get(a.endpoint);
    const ports = ips?.get(a.clientAddress);
    if (ports?.get(a.clientPort) === e) {
      ports.delete(a.clientPort);
      if (ports.size === 0) ips!.delete(a.clientAddress);
      if (ips!.size === 0) this.byClient.delete(a.endpoint);
    }
  }

  uninstall(a: Allocation): void {
    const e = entryOf(a);
    if (e === undefined) return;
    this.unlinkClient(a, e);
    e.permissions.clear();
    e.channelsByNumber.clear();
    e.channelsByPeer.clear();
    // The entry stays (its counters are read after the allocation ends); its user's count drops once.
    if (!e.released) {
      e.released = true;
      this.limiter.release(e.user);
    }
  }

  setPermission(a: Allocation, peerAddress: string, expiresAtSec: number): void {
    entryOf(a)?.permissions.set(peerAddress, expiresAtSec);
  }

  hasPermission(a: Allocation, peerAddress: string, nowSec: number): boolean {
    const exp = entryOf(a)?.permissions.get(peerAddress);
    return exp !== undefined && exp > nowSec;
  }

  livePermissions(a: Allocation, nowSec: number): number {
    const e = entryOf(a);
    let n = 0;
    if (e !== undefined) for (const exp of e.permissions.values()) if (exp > nowSec) n++;
    return n;
  }

  bindChannel(
    a: Allocation,
    number: number,
    peerAddress: string,
    peerPort: number,
    expiresAtSec: number,
  ): void {
    const e = entryOf(a);
    if (e === undefined) return;
    const byNumber = e.channelsByNumber.get(number);
    if (byNumber !== undefined && byNumber.peerAddress === peerAddress && byNumber.peerPort === peerPort) {
      byNumber.expiresAtSec = expiresAtSec;
      return;
    }
    if (byNumber !== undefined) unbind(e, byNumber); // an expired binding of this number
    const byPeer = e.channelsByPeer.get(peerAddress)?.get(peerPort);
    if (byPeer !== undefined) unbind(e, byPeer); // an expired binding of this peer
    const ch = new Channel(number, peerAddress, peerPort, expiresAtSec);
    e.channelsByNumber.set(number, ch);
    let ports = e.channelsByPeer.get(peerAddress);
    if (ports === undefined) {
      ports = new Map();
      e.channelsByPeer.set(peerAddress, ports);
    }
    ports.set(peerPort, ch);
  }

  channel(a: Allocation, number: number, nowSec: number): ChannelBinding | undefined {
    const ch = entryOf(a)?.channelsByNumber.get(number);
    return ch !== undefined && ch.expiresAtSec > nowSec ? ch : undefined;
  }

  channelForPeer(
    a: Allocation,
    peerAddress: string,
    peerPort: number,
    nowSec: number,
  ): ChannelBinding | undefined {
    const ch = entryOf(a)?.channelsByPeer.get(peerAddress)?.get(peerPort);
    return ch !== undefined && ch.expiresAtSec > nowSec ? ch : undefined;
  }

  liveChannels(a: Allocation, nowSec: number): number {
    const e = entryOf(a);
    let n = 0;
    if (e !== undefined) for (const ch of e.channelsByNumber.values()) if (ch.expiresAtSec > nowSec) n++;
    return n;
  }

  prune(a: Allocation, nowSec: number): void {
    const e = entryOf(a);
    if (e === undefined) return;
    for (const [ip, exp] of e.permissions) if (exp <= nowSec) e.permissions.delete(ip);
    for (const ch of e.channelsByNumber.values()) if (ch.expiresAtSec <= nowSec) unbind(e, ch);
  }

  counters(a: Allocation): AllocationCounters {
    return entryOf(a) ?? NO_COUNTERS;
  }

  /** The forwarding state of `a` (tests and diagnostics), or undefined before `install`. */
  inspect(a: Allocation): ForwardingState | undefined {
    return entryOf(a);
  }

  sendToPeer(a: Allocation, relay: RelayHandle, data: Buffer, peerAddress: string, peerPort: number): void {
    const e = entryOf(a);
    if (e !== undefined) this.toPeer(e, relay, data, peerAddress, peerPort);
  }

  countStreamRelay(a: Allocation, toPeer: boolean, bytes: number): void {
    const e = entryOf(a);
    if (toPeer) {
      if (e !== undefined) {
        e.packetsToPeer++;
        e.bytesToPeer += bytes;
      }
      this.stats.relayedToPeerPackets++;
      this.stats.relayedToPeerBytes += bytes;
    } else {
      if (e !== undefined) {
        e.packetsToClient++;
        e.bytesToClient += bytes;
      }
      this.stats.relayedToClientPackets++;
      this.stats.relayedToClientBytes += bytes;
    }
  }

  // -------------------------------------------------------------------------------------------
  // Hot paths

  /** RFC 8656 §12.6: ChannelData from a client, its header already checked (`len` payload bytes). */
  fromClient(endpoint: ClientEndpoint, buf: Buffer, len: number, address: string, port: number): void {
    const e = this.byClient.get(endpoint)?.get(address)?.get(port);
    if (e === undefined) {
      this.stats.droppedNoAllocation++;
      return;
    }
    const ch = e.channelsByNumber.get(buf.readUInt16BE(0));
    if (ch === undefined || ch.expiresAtSec <= this.clock.nowSec()) {
      this.stats.droppedNoChannel++;
      return;
    }
    const relays = e.allocation.relays;
    const relay =
      relays.length === 1 ? relays[0]! : e.allocation.relayFor(ch.peerAddress.includes(':') ? 6 : 4);
    if (relay === undefined) {
      this.stats.droppedNoChannel++;
      return;
    }
    // subarray: a view into the datagram Node handed us; dgram keeps it alive until sent.
    this.toPeer(
      e,
      relay,
      buf.subarray(CHANNEL_HEADER_LENGTH, CHANNEL_HEADER_LENGTH + len),
      ch.peerAddress,
      ch.peerPort,
    );
  }

  /**
   * The payload policy and the bandwidth limits (`relay-limits.ts`), checked after the permission
   * and channel: true when `data` may be relayed for `e`; otherwise it is counted as dropped.
   */
  private admit(e: Entry, data: Buffer): boolean {
    const l = this.limiter;
    if (l.webrtcOnly && !isWebRtcPayload(data)) {
      e.payloadRefused++;
      this.stats.droppedPayloadPolicy++;
      return false;
    }
    if (!l.limited) return true;
    const hit: LimitHit = l.take(e.bucket, e.user, data.length, this.clock.nowMs());
    if (hit === Limit.None) return true;
    e.bandwidthDropped++;
    if (hit === Limit.Allocation) this.stats.droppedMaxBps++;
    else if (hit === Limit.User) this.stats.droppedUserMaxBps++;
    else this.stats.droppedBpsCapacity++;
    return false;
  }

  private toPeer(e: Entry, relay: RelayHandle, data: Buffer, peerAddress: string, peerPort: number): void {
    if (!this.admit(e, data)) return;
    // Relay to relay behind 1:1 NAT: our own public address is delivered to the local socket
    // instead of being hairpinned through the NAT.
    const local = this.addresses.localAddressFor(peerAddress);
    relay.send(data, peerPort, local ?? peerAddress);
    e.packetsToPeer++;
    e.bytesToPeer += data.length;
    this.stats.relayedToPeerPackets++;
    this.stats.relayedToPeerBytes += data.length;
  }

  /** RFC 8656 §10.3/§12.6: a datagram from a peer on `relay`: ChannelData or a Data indication. */
  fromPeer(a: Allocation, relay: RelayHandle, msg: Buffer, fromAddress: string, fromPort: number): void {
    const e = entryOf(a);
    if (e === undefined || a.deleted) {
      this.stats.droppedNoAllocation++;
      return;
    }
    const nowSec = this.clock.nowSec();
    // A packet from one of our own relay sockets carries its local address; peers know it by the
    // advertised one.
    const peerAddress = this.addresses.advertisedAddressFor(fromAddress) ?? fromAddress;
    const exp = e.permissions.get(peerAddress);
    if (exp === undefined || exp <= nowSec) {
      this.stats.droppedNoPermission++;
      return;
    }
    if (!this.admit(e, msg)) return;
    const endpoint = a.endpoint;
    const ch = e.channelsByPeer.get(peerAddress)?.get(fromPort);
    if (ch !== undefined && ch.expiresAtSec > nowSec) {
      if (msg.length > 0xffff) {
        this.stats.droppedOversize++;
        return;
      }
      const hdr = Buffer.allocUnsafe(CHANNEL_HEADER_LENGTH);
      writeChannelHeader(hdr, ch.number, msg.length);
      // Over TCP/TLS ChannelData is padded to a multiple of 4 (RFC 8656 §12.5); over UDP it is not.
      const pad = endpoint.transport === 'udp' ? 0 : streamPadding(msg.length);
      endpoint.sendv(pad === 0 ? [hdr, msg] : [hdr, msg, PADDING[pad]!], a.clientAddress, a.clientPort);
    } else {
      const head = dataIndicationHead(peerAddress, fromPort, msg.length, relay.family);
      if (head === undefined) {
        this.stats.droppedOversize++;
        return;
      }
      const pad = streamPadding(msg.length);
      endpoint.sendv(pad === 0 ? [head, msg] : [head, msg, PADDING[pad]!], a.clientAddress, a.clientPort);
    }
    e.packetsToClient++;
    e.bytesToClient += msg.length;
    this.stats.relayedToClientPackets++;
    this.stats.relayedToClientBytes += msg.length;
  }
}

function unbind(e: Entry, ch: Channel): void {
  e.channelsByNumber.delete(ch.number);
  const ports = e.channelsByPeer.get(ch.peerAddress);
  if (ports === undefined) return;
  ports.delete(ch.peerPort);
  if (ports.size === 0) e.channelsByPeer.delete(ch.peerAddress);
}
