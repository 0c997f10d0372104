/**
 * The TURN control plane (RFC 8656, RFC 6156): authenticates requests, dispatches them to one
 * handler per method (`handlers/*.ts`), keeps the allocations' lifecycle, and programs the data
 * plane through the `ForwardingTable` interface. Sans-I/O: sockets are reached only through the
 * injected `RelayAllocator` and `ClientEndpoint`s, time only through the injected `Clock`, and
 * nothing here sets a timer — the shell calls `sweep()` once a second.
 *
 * One output path: every response, immediate or later (an Allocate waits for its relay sockets),
 * goes out through the request's endpoint.
 */
import type { Authenticator, AuthFailure, AuthResult } from '../auth/authenticate.js';
import type { Clock } from '../clock.js';
import { AttrType, ErrorCode, Method } from '../constants.js';
import type { PeerPolicy } from '../peer-policy.js';
import type { SourceRateLimiter } from '../rate-limit.js';
import type { Stats } from '../stats.js';
import { readString, readUint32 } from '../stun/attrs.js';
import type { StunView } from '../stun/decode.js';
import type { ClientEndpoint } from '../transport.js';
import type { AllocationAdmission } from './admission.js';
import type { Allocation } from './allocation.js';
import { StunError } from './errors.js';
import type { AuthFailureInfo, DeleteReason, TurnEventBus } from './events.js';
import type { AllocationCounters, ForwardingTable } from './forwarding.js';
import { allocate } from './handlers/allocate.js';
import { channelBind } from './handlers/channel-bind.js';
import { bindTimeoutSec, connect } from './handlers/connect.js';
import { connectionBind } from './handlers/connection-bind.js';
import { createPermission } from './handlers/create-permission.js';
import { refresh } from './handlers/refresh.js';
import { sendIndication } from './handlers/send.js';
import { newGeneration, TicketBook } from './mobility.js';
import { ResponseCache } from './response-cache.js';
import { Responder } from './responses.js';
import { AllocationTable } from './table.js';
import {
  DEFAULT_MAX_TCP_CONNECTIONS,
  type PeerConnection,
  type TcpConnection,
  TcpConnections,
  type TcpConnector,
  TcpState,
} from './tcp-relay.js';
import type { RelayAllocator, TurnOptions, TurnRequest, TurnState } from './types.js';

export type { AuthFailureInfo, DeleteReason, TurnEvents } from './events.js';
export type { RelayAllocator, RelayRequest, RelayResult, TurnOptions } from './types.js';

/** Reason phrase of the 401 that every TURN request gets while TURN is disabled. */
export const TURN_DISABLED_REASON = 'TURN disabled: no users or secrets configured';

type Handler = (s: TurnState, r: TurnRequest) => Buffer | null;

/** The request handlers by method (RFC 8656 §7, §8, §9, §11). */
const HANDLERS: ReadonlyMap<number, Handler> = new Map<number, Handler>([
  [Method.Allocate, allocate],
  [Method.Refresh, refresh],
  [Method.CreatePermission, createPermission],
  [Method.ChannelBind, channelBind],
  [Method.Connect, connect],
  [Method.ConnectionBind, connectionBind],
]);

/** What the service is built from; everything is given at construction. */
export interface TurnServiceDeps {
  readonly options: TurnOptions;
  readonly auth: Authenticator;
  readonly policy: PeerPolicy;
  readonly allocator: RelayAllocator;
  readonly plane: ForwardingTable;
  readonly limiter: SourceRateLimiter;
  readonly stats: Stats;
  readonly clock: Clock;
  readonly events: TurnEventBus;
  /** Fleet mode: redirects and admission of new allocations (absent: a lone node). */
  readonly admission?: AllocationAdmission;
  /** RFC 6062: opens TCP connections to peers (absent: no TCP allocations, whatever `tcpRelay` says). */
  readonly tcpConnector?: TcpConnector;
  /** RFC 8016 ticket key (32 bytes); default: random per process. */
  readonly mobilityKey?: Buffer;
}

/** A read-only view of one allocation, for the operator API and metrics. */
/** Which ports of one peer IP the peer policy allows (`TurnService.peerPortRule`). */
export interface PeerPortRule {
  readonly lo: number;
  readonly hi: number;
  readonly denied: readonly number[];
}

export interface AllocationInfo {
  readonly allocation: Allocation;
  readonly counters: AllocationCounters;
  readonly permissions: number;
  readonly channels: number;
  /** RFC 6062: peer TCP connections of a TCP allocation (0 for UDP ones). */
  readonly tcpConnections: number;
}

export class TurnService implements TurnState {
  readonly table = new AllocationTable();
  options: TurnOptions;
  auth: Authenticator;
  policy: PeerPolicy;
  readonly allocator: RelayAllocator;
  readonly plane: ForwardingTable;
  readonly stats: Stats;
  readonly clock: Clock;
  readonly events: TurnEventBus;
  readonly responder: Responder;
  readonly cache = new ResponseCache();
  readonly tickets: TicketBook;
  draining = false;
  readonly admission: AllocationAdmission | undefined;
  nextAlternate = 0;
  readonly tcp = new TcpConnections();
  readonly tcpConnector: TcpConnector | undefined;
  private readonly limiter: SourceRateLimiter;
  private nextId = 1;
  private lastPruneSec = 0;

  constructor(deps: TurnServiceDeps) {
    this.options = deps.options;
    this.auth = deps.auth;
    this.policy = deps.policy;
    this.allocator = deps.allocator;
    this.plane = deps.plane;
    this.limiter = deps.limiter;
    this.stats = deps.stats;
    this.clock = deps.clock;
    this.events = deps.events;
    this.admission = deps.admission;
    this.tcpConnector = deps.tcpConnector;
    this.responder = new Responder(deps.stats, deps.options, deps.auth);
    this.tickets = new TicketBook(deps.mobilityKey);
    deps.limiter.setAllocationCheck((address) => this.table.hasClientAddress(address));
  }

  /** Applies reloadable settings (users, secrets, policy, quotas); existing allocations stay. */
  reconfigure(options: TurnOptions, auth: Authenticator, policy: PeerPolicy): void {
    this.options = options;
    this.auth = auth;
    this.policy = policy;
    this.responder.configure(options, auth);
  }

  /** New Allocates are refused while draining (shutdown in progress). */
  setDraining(draining: boolean): void {
    this.draining = draining;
  }

  newAllocationId(): number {
    return this.nextId++;
  }

  // ---------------------------------------------------------------------------------------------
  // Queries (the shell reads allocations only through these)

  get allocationCount(): number {
    return this.table.size;
  }

  /** The allocation of a client 5-tuple, pending ones included. */
  findAllocation(endpoint: ClientEndpoint, address: string, port: number): Allocation | undefined {
    return this.table.find(endpoint, address, port);
  }

  /** Every live (not pending) allocation with its counters and live permission/channel counts. */
  *allocations(): IterableIterator<AllocationInfo> {
    const nowSec = this.clock.nowSec();
    for (const a of this.table.all()) {
      if (a.pending) continue;
      yield {
        allocation: a,
        counters: this.plane.counters(a),
        permissions: this.plane.livePermissions(a, nowSec),
        channels: this.plane.liveChannels(a, nowSec),
        tcpConnections: this.tcp.countOf(a),
      };
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Requests

  /**
   * Handles a TURN request (Allocate, Refresh, CreatePermission, ChannelBind) from a client; the
   * response, if any, goes out through `endpoint` (now, or once the relay is bound). `view` is only
   * valid during this call.
   */
  handleRequest(view: StunView, endpoint: ClientEndpoint, address: string, port: number): void {
    const nowMs = this.clock.nowMs();
    const nowSec = Math.floor(nowMs / 1000);
    // Retransmissions (RFC 8489 §6.3.1) of Allocate and Refresh are answered from the cache: a
    // second Allocate would find its own allocation (437), a Refresh 0 the allocation gone (437).
    // CreatePermission and ChannelBind are idempotent, so a retransmission is simply processed
    // again, which spares every first request the cache's key and entry.
    const cacheable = view.method === Method.Allocate || view.method === Method.Refresh;
    const cacheKey = cacheable ? ResponseCache.key(endpoint.transport, address, port, view.buf) : '';
    if (cacheable) {
      const cached = this.cache.get(cacheKey, nowSec);
      if (cached !== undefined) {
        this.stats.retransmissions++;
        endpoint.send(cached, address, port);
        return;
      }
    }
    if (!this.options.enabled) {
      this.refuseDisabled(view, endpoint, address, port, nowMs);
      return;
    }
    let auth = this.auth.authenticate(view, address, port, nowSec);
    if (!auth.ok && auth.reason === 'bad-nonce' && view.method === Method.ConnectionBind)
      auth = this.authenticateDataConnection(view, address, nowSec) ?? auth;
    if (!auth.ok) {
      this.refuseUnauthenticated(view, auth, endpoint, address, port, nowMs);
      return;
    }
    // Valid MESSAGE-INTEGRITY: this source receives our answers, so it is not spoofed.
    this.limiter.verify(address, nowMs);
    const request: TurnRequest = { view, endpoint, address, port, nowSec, auth, cacheKey };
    let response: Buffer | null;
    try {
      const handler = HANDLERS.get(view.method);
      if (handler === undefined) throw new StunError(ErrorCode.BadRequest);
      response = handler(this, request);
    } catch (e) {
      if (!(e instanceof StunError)) throw e;
      response = this.responder.refusal(view, e, auth);
    }
    if (response === null) return;
    if (cacheable) this.cache.set(cacheKey, response, nowSec);
    endpoint.send(response, address, port);
  }

  /**
   * RFC 6062 §4.4: a client opens each data connection with a ConnectionBind signed with the nonce
   * it holds, the one its control connection got; nonces are bound to the client's address and
   * port, so that nonce is accepted on a new connection from the same IP address when the request
   * names a peer data connection of an allocation whose control connection it was issued to.
   * (Otherwise every data connection costs a 438, and clients that share one nonce between their
   * connections, as coturn's uclient does, then get 438 on the control connection in turn.)
   */
  private authenticateDataConnection(
    view: StunView,
    address: string,
    nowSec: number,
  ): AuthResult | undefined {
    const id = readUint32(view, AttrType.ConnectionId);
    const a = id === undefined ? undefined : this.tcp.get(id)?.allocation;
    if (a === undefined || a.deleted || a.clientAddress !== address) return undefined;
    return this.auth.authenticate(view, a.clientAddress, a.clientPort, nowSec);
  }

  /** RFC 8656 §10.2: a Send indication (never authenticated, never answered). */
  handleSendIndication(view: StunView, endpoint: ClientEndpoint, address: string, port: number): void {
    sendIndication(this, view, endpoint, address, port);
  }

  /**
   * A 401 or 438 challenge, or a 400, to a request that failed authentication. The first 401 of
   * every allocation (no credentials yet) is the protocol's challenge, not a failure; everything
   * else is reported to the `authFailed` event (logged, rate-limited, by the shell).
   */
  private refuseUnauthenticated(
    view: StunView,
    auth: AuthFailure,
    endpoint: ClientEndpoint,
    address: string,
    port: number,
    nowMs: number,
  ): void {
    if (auth.reason === 'missing-credentials') this.stats.authChallenges++;
    else {
      this.stats.countAuthFailure(auth.reason);
      this.events.emitAuthFailed(authFailureInfo(view, auth, endpoint, address, port));
    }
    // Over UDP only: stream sources cannot be spoofed, and stream clients never retransmit.
    if (
      endpoint.transport === 'udp' &&
      !this.limiter.allow(address, nowMs, auth.code === 400 ? 'error' : 'challenge')
    ) {
      this.stats.droppedRateLimited++;
      return;
    }
    const w = this.responder.error(view.method, view.buf, auth.code);
    if (auth.code !== 400)
      this.auth.addChallenge(w, address, port, Math.floor(nowMs / 1000), this.options.offerSha256);
    endpoint.send(this.responder.unsigned(w, view), address, port);
  }

  /**
   * TURN is switched off (no users and no secrets): every TURN request gets a 401 challenge whose
   * reason phrase says so. A 401 is what clients act on: a browser retries once with its
   * credentials, gets the same answer and reports the error at once (an unauthenticated 400 is
   * discarded by Chromium, which then retries until its own timeout).
   */
  private refuseDisabled(
    view: StunView,
    endpoint: ClientEndpoint,
    address: string,
    port: number,
    nowMs: number,
  ): void {
    this.stats.turnDisabledRefusals++;
    if (endpoint.transport === 'udp' && !this.limiter.allow(address, nowMs, 'challenge')) {
      this.stats.droppedRateLimited++;
      return;
    }
    const w = this.responder.error(view.method, view.buf, ErrorCode.Unauthorized, TURN_DISABLED_REASON);
    this.auth.addChallenge(w, address, port, Math.floor(nowMs / 1000), this.options.offerSha256);
    endpoint.send(this.responder.unsigned(w, view), address, port);
  }

  // ---------------------------------------------------------------------------------------------
  // Helpers for the handlers (TurnState)

  /** Allocation of this 5-tuple that belongs to the authenticated user; 437/441 otherwise. */
  ownAllocation(r: TurnRequest): Allocation {
    const a = this.table.find(r.endpoint, r.address, r.port);
    if (a === undefined || a.pending) throw new StunError(ErrorCode.AllocationMismatch);
    if (a.username !== r.auth.username) throw new StunError(ErrorCode.WrongCredentials);
    return a;
  }

  /**
   * The peer policy, plus one exception: other allocations of this server are reachable relay to
   * relay whatever the default policy says (their address is often private or loopback) — on the
   * server's own relay addresses and relay ports only. `port` undefined: an IP-only check
   * (CreatePermission). Port 0 is never a peer: nothing can be sent to it. `bytes`, when given, are
   * the same address as 4 or 16 bytes (checked without parsing `address`).
   */
  peerAllowed(address: string, port: number | undefined, bytes?: Uint8Array): boolean {
    if (port === 0) return false;
    const verdict =
      bytes === undefined ? this.policy.check(address, port ?? 0) : this.policy.checkBytes(bytes, port ?? 0);
    if (verdict === 'allowed') return true;
    return (
      verdict === 'denied-default' &&
      this.allocator.isOwnRelayAddress(address) &&
      (port === undefined || (port >= this.options.minRelayPort && port <= this.options.maxRelayPort))
    );
  }

  /**
   * `peerAllowed` for every port of `address` at once, for a data plane that checks ports itself:
   * allowed are the ports in [lo, hi] other than `denied` (the server's own sockets on that IP).
   * lo > hi: none. The verdict depends on the port only through those two rules (see peer-policy.ts).
   */
  peerPortRule(address: string): PeerPortRule {
    const denied = this.policy.ownPorts(address);
    let probe = 1;
    while (denied.includes(probe)) probe++;
    const verdict = this.policy.check(address, probe);
    if (verdict === 'allowed') return { lo: 1, hi: 0xffff, denied };
    if (verdict === 'denied-default' && this.allocator.isOwnRelayAddress(address))
      return { lo: this.options.minRelayPort, hi: this.options.maxRelayPort, denied };
    return { lo: 1, hi: 0, denied };
  }

  // ---------------------------------------------------------------------------------------------
  // Lifecycle

  /** Installs a new allocation whose relays are bound: the data plane starts forwarding for it. */
  activate(a: Allocation): void {
    a.pending = false;
    this.plane.install(a);
    if (a.mobilityGeneration !== 0) this.tickets.add(a);
    this.stats.allocationsCreated++;
    this.events.emitAllocationCreated(a);
  }

  moveAllocation(a: Allocation, endpoint: ClientEndpoint, address: string, port: number): boolean {
    if (!this.plane.move(a, endpoint, address, port)) return false;
    const from = { transport: a.endpoint.transport, address: a.clientAddress, port: a.clientPort };
    this.table.remove(a);
    a.endpoint = endpoint;
    a.clientAddress = address;
    a.clientPort = port;
    this.table.add(a);
    // Every ticket issued before the move is void from now on (a replay moves nothing).
    a.mobilityGeneration = newGeneration(a.mobilityGeneration);
    this.stats.mobilityMoves++;
    this.events.emitAllocationMoved(a, from);
    return true;
  }

  deleteAllocation(a: Allocation, reason: DeleteReason): void {
    if (a.deleted) return;
    a.deleted = true;
    this.table.remove(a);
    // RFC 6062: the peer and client data connections go with the allocation.
    if (a.relayTransport === 'tcp') this.tcp.closeAllOf(a);
    this.tickets.remove(a);
    // Still binding its relay: never announced, so not counted; the completion closes the sockets.
    if (a.pending) return;
    this.plane.uninstall(a);
    for (const r of a.relays) r.close();
    this.stats.countAllocationDeleted(reason);
    this.events.emitAllocationDeleted(a, reason);
  }

  /** The stream connection `endpoint` closed: its allocations go at once (RFC 8656 §5). */
  endpointClosed(endpoint: ClientEndpoint): void {
    for (const a of [...this.table.ofEndpoint(endpoint)]) this.deleteAllocation(a, 'connection-closed');
  }

  /** Periodic work, once a second: expiry of allocations; pruning of permissions, channels, cache. */
  sweep(): void {
    const nowSec = this.clock.nowSec();
    const prune = nowSec - this.lastPruneSec >= 10;
    if (prune) this.lastPruneSec = nowSec;
    for (const a of [...this.table.all()]) {
      if (a.pending) continue;
      if (a.expiresAtSec <= nowSec) this.deleteAllocation(a, 'expired');
      else if (prune) this.plane.prune(a, nowSec);
    }
    if (prune) this.cache.prune(nowSec);
    // RFC 6062 §5.2, §5.3: peer data connections not bound within 30 s are closed.
    if (this.tcp.size > 0) this.stats.tcpBindTimeouts += this.tcp.expire(nowSec);
  }

  // ---------------------------------------------------------------------------------------------
  // RFC 6062 TCP relaying (the shell reports its connections)

  /**
   * RFC 6062 §5.3: a peer connected to the relayed address of TCP allocation `a` from
   * `address`:`port`. Kept (and announced to the client in a ConnectionAttempt indication) only
   * when the peer's IP has a permission and the peer policy still allows it, within the
   * allocation's connection cap; otherwise undefined, and the shell closes it at once.
   */
  peerConnected(
    a: Allocation,
    address: string,
    port: number,
    peer: PeerConnection,
  ): TcpConnection | undefined {
    if (a.deleted || a.pending || a.relayTransport !== 'tcp') return undefined;
    // Our own relay behind 1:1 NAT connects from its local address; the client knows the advertised one.
    const ip = this.allocator.advertisedAddressFor(address) ?? address;
    const refused =
      !this.plane.hasPermission(a, ip, this.clock.nowSec()) ||
      !this.peerAllowed(ip, undefined) ||
      this.tcp.countOf(a) >= (this.options.tcpRelayMaxConnections ?? DEFAULT_MAX_TCP_CONNECTIONS);
    const c = refused ? undefined : this.tcp.add(a, ip, port, false, TcpState.Pending);
    if (c === undefined) {
      this.stats.tcpPeerConnectionsRefused++;
      return undefined;
    }
    c.peer = peer;
    c.bindDeadlineSec = this.clock.nowSec() + bindTimeoutSec(this);
    this.stats.tcpConnectionsOpened++;
    a.endpoint.send(this.tcp.connectionAttempt(c), a.clientAddress, a.clientPort);
    return c;
  }

  /** A peer data connection (or the client data connection piped to it) closed. */
  tcpConnectionClosed(c: TcpConnection): void {
    this.tcp.close(c);
  }

  /** Deletes every allocation (shutdown). */
  closeAll(reason: DeleteReason): void {
    for (const a of [...this.table.all()]) this.deleteAllocation(a, reason);
  }
}

function authFailureInfo(
  view: StunView,
  auth: AuthFailure,
  endpoint: ClientEndpoint,
  address: string,
  port: number,
): AuthFailureInfo {
  const name = readString(view, AttrType.Username);
  return {
    reason: auth.reason,
    code: auth.code,
    method: view.method,
    username:
      name !== undefined ? name.slice(0, 128) : view.has(AttrType.Userhash) ? '<userhash>' : undefined,
    realm: readString(view, AttrType.Realm)?.slice(0, 128),
    transport: endpoint.transport,
    address,
    port,
  };
}
