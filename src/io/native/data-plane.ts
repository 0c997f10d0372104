/**
 * The native data plane, seen from the control plane: a `ForwardingTable` like the JavaScript one,
 * programmed the same way by the core. UDP clients of native listeners are served by the addon's
 * worker threads (ChannelData, Send indications, peer datagrams, plain Binding requests); the rest
 * (TCP and TLS clients, and whatever the threads hand up) goes through the JavaScript data plane,
 * which also keeps the control plane's view of every allocation's permissions and channels. So
 * both planes serve one daemon at once, per allocation, and the core's queries
 * (`hasPermission`, `liveChannels`…) never cross into native memory.
 *
 * Each allocation of a native client is installed on the thread that owns its 5-tuple (the one the
 * steering program sends the client's datagrams to, native/steer.h; without steering, the one
 * whose socket the kernel's SO_REUSEPORT hash gave its Allocate), with relay sockets bound here and
 * handed to that thread. Updates are queued to it in order.
 */
import type { Clock } from '../../core/clock.js';
import type { Stats } from '../../core/stats.js';
import type { ClientEndpoint, RelayAddressMap, RelayHandle } from '../../core/transport.js';
import type { Allocation } from '../../core/turn/allocation.js';
import type {
  AllocationCounters,
  ChannelBinding,
  ClientDataSink,
  ForwardingTable,
  PeerDataSink,
} from '../../core/turn/forwarding.js';
import { JsDataPlane } from '../../core/turn/js-data-plane.js';
import type { RelayLimitOptions } from '../../core/turn/relay-limits.js';
import type { PeerPortRule } from '../../core/turn/service.js';
import type { Logger } from '../../log.js';
import { type NativeAddon, type NativeHandle, THREAD_STATS, type ThreadStat } from './addon.js';

/** A UDP client endpoint served by a native thread: one listener socket of one thread. */
export class NativeEndpoint implements ClientEndpoint {
  readonly transport = 'udp' as const;
  readonly plane: NativeDataPlane;
  readonly listener: number;
  readonly thread: number;

  constructor(plane: NativeDataPlane, listener: number, thread: number) {
    this.plane = plane;
    this.listener = listener;
    this.thread = thread;
  }

  send(buf: Buffer, address: string, port: number): void {
    this.plane.handle.send(this.listener, this.thread, buf, address, port);
  }

  sendv(bufs: readonly Buffer[], address: string, port: number): void {
    this.plane.handle.send(this.listener, this.thread, bufs, address, port);
  }
}

/** A relay socket the addon bound: JavaScript owns it until the allocation is installed. */
export interface NativeRelay extends RelayHandle {
  readonly nativeFd: number;
  /** The owning thread has it now (closing it is the thread's job). */
  handOver(): void;
}

/** Receives the datagrams a listener's threads hand up. */
export interface UpcallTarget {
  deliver(thread: number, buf: Buffer, address: string, port: number): void;
}

export interface NativeDataPlaneOptions {
  readonly addon: NativeAddon;
  readonly threads: number;
  readonly clock: Clock;
  readonly stats: Stats;
  readonly addresses: RelayAddressMap;
  /** local ↔ advertised relay addresses (1:1 NAT), as the relay pool has them. */
  readonly addressPairs: readonly { readonly local: string; readonly advertised: string }[];
  /**
   * The ports of a peer IP the peer policy allows, checked by the threads on Send indications as
   * the control plane checks them (`TurnService.peerPortRule`, the policy in force).
   */
  readonly peerRule: (address: string) => PeerPortRule;
  /** Not `no-relay-steering`: TURN requests go straight to this thread (native/steer.h). */
  readonly steering: boolean;
  readonly log: Logger;
}

/** Longest a thread with nothing to receive waits for queued table operations (see wake). */
const FLUSH_DELAY_MS = 50;

const ZERO: AllocationCounters = Object.freeze({
  packetsToPeer: 0,
  bytesToPeer: 0,
  packetsToClient: 0,
  bytesToClient: 0,
  payloadRefused: 0,
  bandwidthDropped: 0,
});

export type ThreadCounters = Record<ThreadStat, number>;

export class NativeDataPlane implements ForwardingTable, ClientDataSink, PeerDataSink {
  readonly handle: NativeHandle;
  readonly threads: number;
  /** The JavaScript plane: streams' allocations, hand-ups, and the control plane's view. */
  readonly js: JsDataPlane;
  private readonly stats: Stats;
  private readonly peerRule: (address: string) => PeerPortRule;
  private readonly steering: boolean;
  private readonly log: Logger;
  private readonly ids = new Map<Allocation, number>();
  /** Counters of native allocations after they ended (read by the allocation-ended log line). */
  private readonly ended = new WeakMap<Allocation, AllocationCounters>();
  private readonly targets: (UpcallTarget | undefined)[] = [];
  private readonly scratch = new Float64Array(6);
  private readonly threadScratch: Float64Array;
  /** Thread totals already added to `stats`. */
  private readonly synced: Float64Array;
  private closed = false;
  /** A flush of the queued table operations is due (see wake). */
  private flushQueued = false;
  private readonly flushNow = (): void => {
    this.flushQueued = false;
    if (!this.closed) this.handle.flush();
  };

  constructor(options: NativeDataPlaneOptions) {
    this.stats = options.stats;
    this.peerRule = options.peerRule;
    this.steering = options.steering;
    this.log = options.log;
    this.js = new JsDataPlane({ clock: options.clock, stats: options.stats, addresses: options.addresses });
    const log = options.log;
    this.handle = new options.addon.DataPlane(
      options.threads,
      options.addressPairs
        .filter((p) => p.local !== p.advertised)
        .map((p) => [p.local, p.advertised] as const),
      (listener, thread, buf, address, port) => {
        const target = this.targets[listener];
        if (target === undefined) return;
        try {
          target.deliver(thread, buf, address, port);
        } catch (err) {
          log.error(
            { err: (err as Error).message, stack: (err as Error).stack },
            'handling a datagram failed',
          );
        }
      },
    );
    this.threads = this.handle.threads;
    this.threadScratch = new Float64Array(options.addon.STATS);
    this.synced = new Float64Array(options.addon.STATS);
  }

  /**
   * Opens a listening address on every thread and (unless `no-relay-steering`) its control socket, read
   * on this thread; datagrams of it handed up go to `target`.
   */
  openListener(address: string, port: number, sockBuf: number, target: UpcallTarget): [number, number] {
    const [index, bound, notSteered] = this.handle.openListener(address, port, sockBuf, this.steering);
    this.targets[index] = target;
    if (this.steering && notSteered !== '')
      this.log.warn(
        { address, port: bound, reason: notSteered },
        'datagram steering unavailable on this address: the threads hand TURN requests up',
      );
    return [index, bound];
  }

  /**
   * Datagrams the control sockets delivered to this thread (steered STUN messages: TURN requests),
   * and control sockets closed after a poll error (their requests then come up through the threads).
   */
  controlStats(): { datagrams: number; failures: number } {
    const [datagrams, failures] = this.handle.controlStats();
    return { datagrams, failures };
  }

  /**
   * Datagrams the kernel dropped at the listening sockets because their receive buffers were full:
   * the threads' sockets (relay traffic, Binding requests) and the control sockets (TURN requests
   * waiting for the main thread). Read from the sockets (SO_MEMINFO) at each call.
   */
  socketDrops(): { listener: number; control: number } {
    const [listener, control] = this.handle.socketDrops();
    return { listener, control };
  }

  /**
   * The payload policy and bandwidth limits, in both planes: the threads' (UDP clients of this
   * plane) and the JavaScript plane's (TCP and TLS clients, and what the threads hand up). Each
   * plane has its own user and server buckets (see README "Bandwidth limits").
   */
  setLimits(options: RelayLimitOptions): void {
    this.js.setLimits(options);
    if (this.closed) return;
    this.handle.setLimits(
      options.payloadPolicy === 'webrtc',
      options.maxBps,
      options.userMaxBps,
      options.bpsCapacity,
    );
  }

  /** The SOFTWARE attribute of Binding responses the threads answer. */
  setSoftware(text: string | undefined): void {
    this.handle.setSoftware(text);
  }

  // -------------------------------------------------------------------------------------------
  // ForwardingTable

  install(a: Allocation): void {
    this.js.install(a);
    const ep = a.endpoint;
    if (!(ep instanceof NativeEndpoint) || ep.plane !== this || this.closed) return;
    const relays = a.relays as NativeRelay[];
    const id = this.handle.install(
      ep.thread,
      ep.listener,
      a.clientAddress,
      a.clientPort,
      relays.map((r) => r.nativeFd),
      a.userId,
    );
    for (const r of relays) r.handOver();
    this.ids.set(a, id);
    this.wake();
  }

  /**
   * The threads apply queued table operations before they handle the datagrams of their next
   * receive, so a client's packet sent after a reply always finds the state the request made, and a
   * new allocation's relay sockets are in its thread's poll set from the start (the addon adds them
   * from this thread), so a peer's datagram wakes the thread, which applies the install first.
   * Nothing has to wait for a thread, then: the flush only bounds, to FLUSH_DELAY_MS, how long an
   * idle thread keeps what uninstalls released (the relay ports are free at once; the stand-in
   * descriptors and the memory go at the flush). In exchange a burst of Allocates, permissions,
   * channels and releases costs the threads no wake-ups of their own, which on a busy CPU are
   * context switches (and the main thread one timer per FLUSH_DELAY_MS, not one per turn).
   */
  private wake(): void {
    if (this.flushQueued) return;
    this.flushQueued = true;
    setTimeout(this.flushNow, FLUSH_DELAY_MS);
  }

  /**
   * RFC 8016: a UDP allocation of the threads moves to another client 5-tuple of this plane, on
   * whichever thread owns that 5-tuple (the addon hands the allocation over); the JavaScript
   * plane's view moves with it. Streams' allocations are the JavaScript plane's alone.
   */
  move(a: Allocation, endpoint: ClientEndpoint, address: string, port: number): boolean {
    const id = this.ids.get(a);
    if (id !== undefined) {
      if (!(endpoint instanceof NativeEndpoint) || endpoint.plane !== this || this.closed) return false;
      if (!this.handle.move(id, endpoint.thread, endpoint.listener, address, port)) return false;
    } else if (endpoint instanceof NativeEndpoint) return false; // served by JS: it stays so
    return this.js.move(a, endpoint, address, port);
  }

  uninstall(a: Allocation): void {
    this.js.uninstall(a);
    const id = this.ids.get(a);
    if (id === undefined) return;
    this.ids.delete(a);
    if (this.handle.counters(id, this.scratch)) this.ended.set(a, countersOf(this.scratch));
    this.handle.uninstall(id); // the relay ports are free right after (see wake)
    this.wake();
  }

  setPermission(a: Allocation, peerAddress: string, expiresAtSec: number): void {
    this.js.setPermission(a, peerAddress, expiresAtSec);
    const id = this.ids.get(a);
    if (id !== undefined) this.pushPermission(id, peerAddress, expiresAtSec);
  }

  private pushPermission(id: number, peerAddress: string, expiresAtSec: number): void {
    const rule = this.peerRule(peerAddress);
    this.handle.permission(id, peerAddress, expiresAtSec, rule.lo, rule.hi, rule.denied);
    this.wake();
  }

  /** The peer policy changed (reload): every permission the threads hold gets its port rule again. */
  refreshPeerRules(): void {
    for (const [a, id] of this.ids) {
      const state = this.js.inspect(a);
      if (state !== undefined) for (const [ip, exp] of state.permissions) this.pushPermission(id, ip, exp);
    }
  }

  hasPermission(a: Allocation, peerAddress: string, nowSec: number): boolean {
    return this.js.hasPermission(a, peerAddress, nowSec);
  }

  livePermissions(a: Allocation, nowSec: number): number {
    return this.js.livePermissions(a, nowSec);
  }

  bindChannel(
    a: Allocation,
    number: number,
    peerAddress: string,
    peerPort: number,
    expiresAtSec: number,
  ): void {
    this.js.bindChannel(a, number, peerAddress, peerPort, expiresAtSec);
    const id = this.ids.get(a);
    if (id === undefined) return;
    this.handle.channel(id, number, peerAddress, peerPort, expiresAtSec);
    this.wake();
  }

  channel(a: Allocation, number: number, nowSec: number): ChannelBinding | undefined {
    return this.js.channel(a, number, nowSec);
  }

  channelForPeer(
    a: Allocation,
    peerAddress: string,
    peerPort: number,
    nowSec: number,
  ): ChannelBinding | undefined {
    return this.js.channelForPeer(a, peerAddress, peerPort, nowSec);
  }

  liveChannels(a: Allocation, nowSec: number): number {
    return this.js.liveChannels(a, nowSec);
  }

  /** The threads drop expired entries themselves (checked per batch, removed as new ones come). */
  prune(a: Allocation, nowSec: number): void {
    this.js.prune(a, nowSec);
  }

  /** What the JavaScript path relayed for `a` plus what its thread relayed. */
  counters(a: Allocation): AllocationCounters {
    const own = this.js.counters(a);
    const id = this.ids.get(a);
    const native =
      id !== undefined && this.handle.counters(id, this.scratch)
        ? countersOf(this.scratch)
        : this.ended.get(a);
    if (native === undefined) return own;
    return {
      packetsToPeer: own.packetsToPeer + native.packetsToPeer,
      bytesToPeer: own.bytesToPeer + native.bytesToPeer,
      packetsToClient: own.packetsToClient + native.packetsToClient,
      bytesToClient: own.bytesToClient + native.bytesToClient,
      payloadRefused: own.payloadRefused + native.payloadRefused,
      bandwidthDropped: own.bandwidthDropped + native.bandwidthDropped,
    };
  }

  sendToPeer(a: Allocation, relay: RelayHandle, data: Buffer, peerAddress: string, peerPort: number): void {
    this.js.sendToPeer(a, relay, data, peerAddress, peerPort);
  }

  countStreamRelay(a: Allocation, toPeer: boolean, bytes: number): void {
    this.js.countStreamRelay(a, toPeer, bytes);
  }

  fromClient(endpoint: ClientEndpoint, buf: Buffer, len: number, address: string, port: number): void {
    this.js.fromClient(endpoint, buf, len, address, port);
  }

  fromPeer(a: Allocation, relay: RelayHandle, msg: Buffer, address: string, port: number): void {
    this.js.fromPeer(a, relay, msg, address, port);
  }

  // -------------------------------------------------------------------------------------------
  // Counters of the threads

  /** One thread's counters (tests, the per-thread metrics). */
  threadCounters(thread: number): ThreadCounters | undefined {
    if (this.closed || !this.handle.threadStats(thread, this.threadScratch)) return undefined;
    const out = {} as ThreadCounters;
    THREAD_STATS.forEach((name, i) => {
      out[name] = this.threadScratch[i]!;
    });
    return out;
  }

  /** Adds what the threads counted since the last call to the shared `Stats` (before a scrape). */
  syncStats(): void {
    if (this.closed) return;
    const totals = new Float64Array(this.synced.length);
    for (let t = 0; t < this.threads; t++) {
      if (!this.handle.threadStats(t, this.threadScratch)) continue;
      for (let i = 0; i < totals.length; i++) totals[i]! += this.threadScratch[i]!;
    }
    const d = (name: ThreadStat): number => {
      const i = THREAD_STATS.indexOf(name);
      const delta = totals[i]! - this.synced[i]!;
      this.synced[i] = totals[i]!;
      return delta;
    };
    const s = this.stats;
    const bindings = d('bindings');
    s.bindingSuccess += bindings;
    s.stunMessages += bindings;
    s.relayedToPeerPackets += d('toPeerPackets');
    s.relayedToPeerBytes += d('toPeerBytes');
    s.relayedToClientPackets += d('toClientPackets');
    s.relayedToClientBytes += d('toClientBytes');
    s.droppedNoPermission += d('droppedNoPermission');
    s.droppedPeerPolicy += d('droppedPeerPolicy');
    s.droppedOversize += d('droppedOversize');
    s.droppedMalformed += d('truncated');
    s.droppedBackpressure += d('upcallDrops') + d('sendErrors');
    s.droppedPayloadPolicy += d('droppedPayloadPolicy');
    s.droppedMaxBps += d('droppedMaxBps');
    s.droppedUserMaxBps += d('droppedUserMaxBps');
    s.droppedBpsCapacity += d('droppedBpsCapacity');
  }

  /** Stops the threads and closes every native socket (listeners, relays). */
  close(): void {
    if (this.closed) return;
    this.syncStats();
    this.closed = true;
    this.handle.close();
    this.ids.clear();
  }
}

function countersOf(v: Float64Array): AllocationCounters {
  return v.every((x) => x === 0)
    ? ZERO
    : {
        packetsToPeer: v[0]!,
        bytesToPeer: v[1]!,
        packetsToClient: v[2]!,
        bytesToClient: v[3]!,
        payloadRefused: v[4]!,
        bandwidthDropped: v[5]!,
      };
}
