/**
 * The TURN service (RFC 8656, RFC 6156): Allocate, Refresh, CreatePermission, ChannelBind, Send
 * and Data indications, ChannelData both ways. Sans-I/O: sockets are reached only through the
 * injected `RelayAllocator`, `ClientEndpoint` and `RelayHandle` interfaces, time is injected, and
 * nothing here sets a timer: `sweep(nowSec)` is called once a second by the shell.
 *
 * Control path (requests) may allocate; the hot paths (`relayChannelData`, `sendIndication`,
 * `onPeerPacket`) build no objects beyond the headers they send.
 */
import { randomBytes } from 'node:crypto';
import type { Authenticator, AuthFailure, AuthFailureReason, AuthSuccess } from '../auth/authenticate.js';
import { isValidChannel, PADDING, streamPadding, writeChannelHeader } from '../channel-data.js';
import {
  AttrType,
  CHANNEL_HEADER_LENGTH,
  Class,
  Family,
  HEADER_LENGTH,
  MAGIC_COOKIE,
  Method,
  REASON_PHRASES,
  Transport,
} from '../constants.js';
import { parseIp, unmapped } from '../ip.js';
import type { PeerPolicy } from '../peer-policy.js';
import type { SourceRateLimiter } from '../rate-limit.js';
import type { Stats } from '../stats.js';
import {
  readAddresses,
  readBytes,
  readChannelNumber,
  readEvenPort,
  readLeadingByte,
  readString,
  readUint32,
  type TransportAddress,
} from '../stun/attrs.js';
import type { StunView } from '../stun/decode.js';
import { StunWriter } from '../stun/encode.js';
import { Allocation, Channel, type ClientEndpoint, type RelayHandle } from './allocation.js';
import { ResponseCache } from './response-cache.js';
import { AllocationTable } from './table.js';

/** What the core asks of the shell for one relay socket. */
export interface RelayRequest {
  readonly family: 4 | 6;
  /** EVEN-PORT: an even port; with `reserveNext`, also reserve port + 1 and return a token. */
  readonly evenPort: boolean;
  readonly reserveNext: boolean;
  /** RESERVATION-TOKEN from an earlier EVEN-PORT Allocate. */
  readonly reservationToken: Buffer | undefined;
}

export type RelayResult =
  | { readonly ok: true; readonly relay: RelayHandle; readonly reservationToken: Buffer | undefined }
  | { readonly ok: false; readonly code: 508 };

export interface RelayAllocator {
  /** Whether relay addresses of `family` exist at all (else 440). */
  supports(family: 4 | 6): boolean;
  /**
   * Binds one relay socket per request for `owner` and calls `done` once with the results in
   * order. Packets the sockets receive go to `TurnService.onPeerPacket(owner, relay, …)`.
   */
  allocate(
    owner: Allocation,
    requests: readonly RelayRequest[],
    done: (results: RelayResult[]) => void,
  ): void;
  /** True when `address` is one of this server's relay addresses (local or advertised). */
  isOwnRelayAddress(address: string): boolean;
  /** For an advertised (public, 1:1 NAT) relay address, the local address to send to instead. */
  localAddressFor(advertised: string): string | undefined;
  /** For a local relay address, the advertised one peers know (the inverse of localAddressFor). */
  advertisedAddressFor(local: string): string | undefined;
}

export interface TurnOptions {
  /**
   * TURN is served (users or REST secrets are configured). When false, TURN requests get a 401
   * saying TURN is disabled; switching it on or off is a reconfiguration, not a restart.
   */
  readonly enabled: boolean;
  readonly defaultLifetimeSec: number;
  readonly maxLifetimeSec: number;
  readonly permissionLifetimeSec: number;
  readonly channelLifetimeSec: number;
  readonly userQuota: number;
  readonly totalQuota: number;
  readonly maxPermissions: number;
  readonly maxChannels: number;
  readonly offerSha256: boolean;
  readonly reasonPhrases: boolean;
  readonly software: string | undefined;
  readonly minRelayPort: number;
  readonly maxRelayPort: number;
  /** Highest channel number accepted in ChannelBind (0x4FFF, or 0x7FFE for RFC 5766 clients). */
  readonly maxChannel: number;
  /**
   * Relay family of an Allocate without REQUESTED-ADDRESS-FAMILY: 'ipv4' (RFC 8656 §7.2), 'ipv6', or
   * 'keep' (the client's own family). Undefined: 'ipv4'. When the server has no relay address of that
   * family the other one is used (the client asked for none in particular).
   */
  readonly defaultFamily?: 'ipv4' | 'ipv6' | 'keep';
  /** Where new Allocates go while draining (300 Try Alternate); empty: they get 508. */
  readonly alternateServers?: readonly { readonly address: string; readonly port: number }[];
}

export type DeleteReason = 'expired' | 'refreshed-to-zero' | 'connection-closed' | 'shutdown' | 'admin';

/** What the shell may log about a failed authentication: never a password, key or nonce. */
export interface AuthFailureInfo {
  readonly reason: AuthFailureReason;
  readonly code: 400 | 401 | 438;
  readonly method: number;
  /** USERNAME as sent (cut to 128 characters), `<userhash>` for USERHASH, else undefined. */
  readonly username: string | undefined;
  readonly realm: string | undefined;
  readonly transport: 'udp' | 'tcp' | 'tls';
  readonly address: string;
  readonly port: number;
}

export interface TurnEvents {
  allocationCreated?(a: Allocation): void;
  allocationDeleted?(a: Allocation, reason: DeleteReason): void;
  /** A request failed authentication for a reason other than the first challenge. */
  authFailed?(info: AuthFailureInfo): void;
}

/** Reason phrase of the 401 that every TURN request gets while TURN is disabled. */
export const TURN_DISABLED_REASON = 'TURN disabled: no users or secrets configured';

function authFailure(
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

/** A protocol refusal: the handler answers with this error code. */
class StunRefusal {
  readonly code: number;
  readonly unknown: readonly number[] | undefined;
  /** ALTERNATE-SERVER of a 300 Try Alternate. */
  readonly alternate: { readonly address: string; readonly port: number } | undefined;
  constructor(code: number, unknown?: readonly number[], alternate?: { address: string; port: number }) {
    this.code = code;
    this.unknown = unknown;
    this.alternate = alternate;
  }
}

const DATA_INDICATION_TYPE = 0x0017; // Data indication: method 0x007, class indication
const DONT_FRAGMENT_UNSUPPORTED: readonly number[] = Object.freeze([AttrType.DontFragment]);

export class TurnService {
  readonly table = new AllocationTable();
  private options: TurnOptions;
  private auth: Authenticator;
  private policy: PeerPolicy;
  private readonly allocator: RelayAllocator;
  private readonly limiter: SourceRateLimiter;
  private readonly stats: Stats;
  private readonly events: TurnEvents;
  private readonly cache = new ResponseCache();
  private readonly writer = new StunWriter(512);
  private nextId = 1;
  private nextAlternate = 0;
  private draining = false;
  private lastPruneSec = 0;
  /** Current coarse time, updated by every entry point that is given a time. */
  nowSec = 0;

  constructor(
    options: TurnOptions,
    auth: Authenticator,
    policy: PeerPolicy,
    allocator: RelayAllocator,
    limiter: SourceRateLimiter,
    stats: Stats,
    events: TurnEvents = {},
  ) {
    this.options = options;
    this.auth = auth;
    this.policy = policy;
    this.allocator = allocator;
    this.limiter = limiter;
    this.stats = stats;
    this.events = events;
    limiter.setAllocationCheck((address) => this.table.hasClientAddress(address));
  }

  /** Applies reloadable settings (users, secrets, policy, quotas); existing allocations stay. */
  reconfigure(options: TurnOptions, auth: Authenticator, policy: PeerPolicy): void {
    this.options = options;
    this.auth = auth;
    this.policy = policy;
  }

  /** New Allocates are refused while draining (shutdown in progress). */
  setDraining(draining: boolean): void {
    this.draining = draining;
  }

  // ---------------------------------------------------------------------------------------------
  // Requests (control path)

  /**
   * Handles a TURN request (Allocate, Refresh, CreatePermission, ChannelBind) from a client.
   * Returns the response to send now, or null (sent later, or dropped). `view` is only valid during
   * this call.
   */
  handleRequest(
    view: StunView,
    endpoint: ClientEndpoint,
    address: string,
    port: number,
    nowMs: number,
  ): Buffer | null {
    const nowSec = Math.floor(nowMs / 1000);
    this.nowSec = nowSec;
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
        return cached;
      }
    }
    if (!this.options.enabled) return this.refuseDisabled(view, endpoint, address, port, nowMs);
    const auth = this.auth.authenticate(view, address, port, nowSec);
    if (!auth.ok) {
      // The first 401 of every allocation (no credentials yet) is the protocol's challenge, not a
      // failure; everything else is reported to the event (logged, rate-limited, by the shell).
      if (auth.reason === 'missing-credentials') this.stats.authChallenges++;
      else {
        this.stats.countAuthFailure(auth.reason);
        this.events.authFailed?.(authFailure(view, auth, endpoint, address, port));
      }
      // Over UDP only: stream sources cannot be spoofed, and stream clients never retransmit.
      if (
        endpoint.transport === 'udp' &&
        !this.limiter.allow(address, nowMs, auth.code === 400 ? 'error' : 'challenge')
      ) {
        this.stats.droppedRateLimited++;
        return null;
      }
      const w = this.startError(view, auth.code);
      if (auth.code !== 400) this.auth.addChallenge(w, address, port, nowSec, this.options.offerSha256);
      return this.finishUnauthenticated(w, view);
    }
    // Valid MESSAGE-INTEGRITY: this source receives our answers, so it is not spoofed.
    this.limiter.verify(address, nowMs);
    let response: Buffer | null;
    try {
      switch (view.method) {
        case Method.Allocate:
          response = this.allocate(view, endpoint, address, port, auth, cacheKey, nowSec);
          break;
        case Method.Refresh:
          response = this.refresh(view, endpoint, address, port, auth, nowSec);
          break;
        case Method.CreatePermission:
          response = this.createPermission(view, endpoint, address, port, auth, nowSec);
          break;
        case Method.ChannelBind:
          response = this.channelBind(view, endpoint, address, port, auth, nowSec);
          break;
        default:
          throw new StunRefusal(400);
      }
    } catch (e) {
      if (!(e instanceof StunRefusal)) throw e;
      response = this.errorResponse(view, e.code, auth, e.unknown, e.alternate);
    }
    if (response !== null && cacheable) this.cache.set(cacheKey, response, nowSec);
    return response;
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
  ): Buffer | null {
    this.stats.turnDisabledRefusals++;
    if (endpoint.transport === 'udp' && !this.limiter.allow(address, nowMs, 'challenge')) {
      this.stats.droppedRateLimited++;
      return null;
    }
    this.stats.countError(401);
    const w = this.writer
      .startResponse(view.method, Class.Error, view.buf)
      .addErrorCode(401, TURN_DISABLED_REASON);
    this.auth.addChallenge(w, address, port, Math.floor(nowMs / 1000), this.options.offerSha256);
    return this.finishUnauthenticated(w, view);
  }

  /** Allocation of this 5-tuple that belongs to the authenticated user; 437/441 otherwise. */
  private ownAllocation(
    endpoint: ClientEndpoint,
    address: string,
    port: number,
    auth: AuthSuccess,
  ): Allocation {
    const a = this.table.find(endpoint, address, port);
    if (a === undefined || a.pending) throw new StunRefusal(437);
    if (a.username !== auth.username) throw new StunRefusal(441);
    return a;
  }

  /** RFC 8656 §7.2 (RFC 6156 §4.2 for address families). */
  private allocate(
    view: StunView,
    endpoint: ClientEndpoint,
    address: string,
    port: number,
    auth: AuthSuccess,
    cacheKey: string,
    nowSec: number,
  ): Buffer | null {
    // 2. The 5-tuple is in use: a retransmission (same transaction ID) is answered from the cache
    //    or, while the relay is still being bound, silently dropped; anything else is 437.
    const existing = this.table.find(endpoint, address, port);
    if (existing !== undefined) {
      if (existing.username !== auth.username) throw new StunRefusal(441);
      if (existing.pending && existing.allocateTid === view.buf.toString('hex', 8, 20)) return null;
      throw new StunRefusal(437);
    }
    // 3. REQUESTED-TRANSPORT: required; only UDP relaying (RFC 6062 TCP relaying is not offered).
    const transport = readLeadingByte(view, AttrType.RequestedTransport);
    if (transport === undefined) throw new StunRefusal(400);
    if (transport !== Transport.UDP) throw new StunRefusal(442);
    // 4. DONT-FRAGMENT: Node cannot set DF on a UDP socket (no IP_MTU_DISCOVER), so the attribute
    //    is treated as unknown comprehension-required (RFC 8656 §7.2 allows exactly this).
    if (view.has(AttrType.DontFragment)) throw new StunRefusal(420, DONT_FRAGMENT_UNSUPPORTED);
    // 5./6. RESERVATION-TOKEN excludes EVEN-PORT and REQUESTED-ADDRESS-FAMILY.
    const token = readBytes(view, AttrType.ReservationToken);
    const even = readEvenPort(view);
    const rafIndex = view.find(AttrType.RequestedAddressFamily);
    const aafIndex = view.find(AttrType.AdditionalAddressFamily);
    if (token !== undefined && (token.length !== 8 || even !== undefined || rafIndex >= 0 || aafIndex >= 0))
      throw new StunRefusal(400);
    // EVEN-PORT reserving the next port cannot go with a dual allocation (RFC 8656 §7.2).
    if (even?.reserveNext === true && aafIndex >= 0) throw new StunRefusal(400);
    if (view.has(AttrType.EvenPort) && even === undefined) throw new StunRefusal(400);
    // Address families: REQUESTED-ADDRESS-FAMILY picks one (default IPv4); ADDITIONAL-ADDRESS-FAMILY
    // (IPv6 only) asks for a second relay address; both together are a bad request.
    let family: 4 | 6 = this.defaultFamily(address);
    if (rafIndex >= 0) {
      if (aafIndex >= 0) throw new StunRefusal(400);
      const raf = readLeadingByte(view, AttrType.RequestedAddressFamily);
      if (raf === Family.IPv4) family = 4;
      else if (raf === Family.IPv6) family = 6;
      else throw new StunRefusal(440);
    }
    let additional = false;
    if (aafIndex >= 0) {
      const aaf = readLeadingByte(view, AttrType.AdditionalAddressFamily);
      if (aaf !== Family.IPv6) throw new StunRefusal(400);
      additional = true;
    }
    if (!this.allocator.supports(family)) throw new StunRefusal(440);
    if (this.draining) {
      // RFC 8489 §10: send the client elsewhere (in turn over the configured alternates), or refuse.
      const alternates = this.options.alternateServers ?? [];
      if (alternates.length === 0) throw new StunRefusal(508);
      const alt = alternates[this.nextAlternate++ % alternates.length]!;
      throw new StunRefusal(300, undefined, alt);
    }
    // Quotas: per user (the REST userid) 486; in total, server capacity: 508.
    if (this.options.userQuota > 0 && this.table.userCount(auth.userId) >= this.options.userQuota)
      throw new StunRefusal(486);
    if (this.options.totalQuota > 0 && this.table.size >= this.options.totalQuota) throw new StunRefusal(508);
    // LIFETIME: the requested value, raised to the default and capped at the maximum.
    const lifetime = this.lifetime(view);

    const a = new Allocation(
      this.nextId++,
      endpoint,
      address,
      port,
      auth.username,
      auth.userId,
      nowSec,
      lifetime,
      view.buf.toString('hex', 8, 20),
    );
    this.table.add(a);
    const requests: RelayRequest[] = [
      {
        family,
        evenPort: even !== undefined,
        reserveNext: even?.reserveNext ?? false,
        reservationToken: token,
      },
    ];
    const wantsV6 = additional && this.allocator.supports(6);
    if (wantsV6)
      requests.push({ family: 6, evenPort: false, reserveNext: false, reservationToken: undefined });
    // The request's bytes are only valid during this call: keep what the answer needs.
    const request = Buffer.from(view.buf);
    this.allocator.allocate(a, requests, (results) =>
      this.allocated(a, request, results, additional, auth, cacheKey),
    );
    return null;
  }

  /** The relay family for an Allocate from `clientAddress` that names none (see TurnOptions.defaultFamily). */
  private defaultFamily(clientAddress: string): 4 | 6 {
    const policy = this.options.defaultFamily ?? 'ipv4';
    let family: 4 | 6 = 4;
    if (policy === 'ipv6' || (policy === 'keep' && unmapped(clientAddress).includes(':'))) family = 6;
    if (!this.allocator.supports(family)) family = family === 4 ? 6 : 4;
    return family;
  }

  /** Second phase of Allocate: the relay sockets are bound (or not). */
  private allocated(
    a: Allocation,
    request: Buffer,
    results: RelayResult[],
    additional: boolean,
    auth: AuthSuccess,
    cacheKey: string,
  ): void {
    const first = results[0];
    const nowSec = this.nowSec;
    let response: Buffer;
    if (a.deleted || first === undefined || !first.ok) {
      for (const r of results) if (r.ok) r.relay.close();
      this.table.remove(a);
      a.deleted = true;
      this.stats.allocateFailures++;
      response = this.errorFor(request, Method.Allocate, 508, auth);
    } else {
      a.relays = [];
      for (const r of results) if (r.ok) a.relays.push(r.relay);
      a.pending = false;
      this.stats.allocationsCreated++;
      const w = this.writer.startResponse(Method.Allocate, Class.Success, request);
      for (const relay of a.relays)
        w.addAddress(AttrType.XorRelayedAddress, relay.advertisedAddress, relay.port, true);
      // RFC 8656 §7.2: the IPv6 half of a dual allocation failed: 440 when the server has no IPv6 relay
      // address (it was not even tried), else the reason it failed (508: no port could be bound).
      if (additional && a.relays.length < 2) {
        const v6 = results[1];
        w.addAddressErrorCode(Family.IPv6, v6 !== undefined && !v6.ok ? v6.code : 440);
      }
      w.addUint32(AttrType.Lifetime, a.expiresAtSec - nowSec);
      if (first.reservationToken !== undefined) w.addBytes(AttrType.ReservationToken, first.reservationToken);
      w.addAddress(AttrType.XorMappedAddress, unmapped(a.clientAddress), a.clientPort, true);
      response = this.finishAuthenticated(w, auth, request);
      this.events.allocationCreated?.(a);
    }
    this.cache.set(cacheKey, response, nowSec);
    a.endpoint.send(response, a.clientAddress, a.clientPort);
  }

  /** RFC 8656 §7.2 item 7 / §8 LIFETIME rules. */
  private lifetime(view: StunView): number {
    const requested = readUint32(view, AttrType.Lifetime);
    const { defaultLifetimeSec, maxLifetimeSec } = this.options;
    const wanted = requested === undefined || requested < defaultLifetimeSec ? defaultLifetimeSec : requested;
    return Math.min(wanted, maxLifetimeSec);
  }

  /** RFC 8656 §8.2: Refresh; LIFETIME 0 deletes the allocation at once. */
  private refresh(
    view: StunView,
    endpoint: ClientEndpoint,
    address: string,
    port: number,
    auth: AuthSuccess,
    nowSec: number,
  ): Buffer {
    const a = this.ownAllocation(endpoint, address, port, auth);
    const raf = readLeadingByte(view, AttrType.RequestedAddressFamily);
    if (raf !== undefined) {
      const fam = raf === Family.IPv4 ? 4 : raf === Family.IPv6 ? 6 : 0;
      if (fam === 0 || a.relayFor(fam) === undefined) throw new StunRefusal(443);
    }
    const requested = readUint32(view, AttrType.Lifetime);
    let granted: number;
    if (requested === 0) {
      this.deleteAllocation(a, 'refreshed-to-zero');
      granted = 0;
    } else {
      granted = this.lifetime(view);
      a.expiresAtSec = nowSec + granted;
    }
    const w = this.writer.startResponse(Method.Refresh, Class.Success, view.buf);
    w.addUint32(AttrType.Lifetime, granted);
    return this.finishAuthenticated(w, auth, view.buf);
  }

  /**
   * The peer policy, plus one exception: other allocations of this server are reachable relay to
   * relay whatever the default policy says (their address is often private or loopback) — on the
   * server's own relay addresses and relay ports only. `port` undefined: an IP-only check
   * (CreatePermission). Port 0 is never a peer: nothing can be sent to it.
   */
  private peerAllowed(address: string, port: number | undefined): boolean {
    if (port === 0) return false;
    const verdict = this.policy.check(address, port ?? 0);
    if (verdict === 'allowed') return true;
    return (
      verdict === 'denied-default' &&
      this.allocator.isOwnRelayAddress(address) &&
      (port === undefined || (port >= this.options.minRelayPort && port <= this.options.maxRelayPort))
    );
  }

  /** Checks a peer address from XOR-PEER-ADDRESS: family (443) and policy (403). */
  private checkPeer(a: Allocation, peer: TransportAddress, withPort: boolean): string {
    const fam = peer.family === Family.IPv4 ? 4 : 6;
    if (a.relayFor(fam) === undefined) throw new StunRefusal(443);
    if (this.peerAllowed(peer.address, withPort ? peer.port : undefined)) return peer.address;
    this.stats.peerRefusals++;
    throw new StunRefusal(403);
  }

  /** RFC 8656 §9.2: CreatePermission, all XOR-PEER-ADDRESS or none. */
  private createPermission(
    view: StunView,
    endpoint: ClientEndpoint,
    address: string,
    port: number,
    auth: AuthSuccess,
    nowSec: number,
  ): Buffer {
    const a = this.ownAllocation(endpoint, address, port, auth);
    const peers = readAddresses(view, AttrType.XorPeerAddress);
    if (peers === undefined || peers.length === 0) throw new StunRefusal(400);
    const ips = peers.map((p) => this.checkPeer(a, p, false));
    let fresh = 0;
    for (const ip of new Set(ips)) if (!a.hasPermission(ip, nowSec)) fresh++;
    if (fresh > 0 && a.livePermissions(nowSec) + fresh > this.options.maxPermissions)
      throw new StunRefusal(508);
    const exp = nowSec + this.options.permissionLifetimeSec;
    for (const ip of ips) a.permissions.set(ip, exp);
    const w = this.writer.startResponse(Method.CreatePermission, Class.Success, view.buf);
    return this.finishAuthenticated(w, auth, view.buf);
  }

  /** RFC 8656 §11.2: ChannelBind; binding again refreshes; also installs the peer's permission. */
  private channelBind(
    view: StunView,
    endpoint: ClientEndpoint,
    address: string,
    port: number,
    auth: AuthSuccess,
    nowSec: number,
  ): Buffer {
    const a = this.ownAllocation(endpoint, address, port, auth);
    const number = readChannelNumber(view);
    const peers = readAddresses(view, AttrType.XorPeerAddress);
    if (
      number === undefined ||
      !isValidChannel(number, this.options.maxChannel) ||
      peers === undefined ||
      peers.length !== 1
    )
      throw new StunRefusal(400);
    const peer = peers[0]!;
    const ip = this.checkPeer(a, peer, true);
    const byNumber = a.channelsByNumber.get(number);
    const live = byNumber !== undefined && byNumber.expiresAtSec > nowSec ? byNumber : undefined;
    // The channel is bound to another peer, or the peer to another channel: 400.
    if (live !== undefined && (live.peerAddress !== ip || live.peerPort !== peer.port))
      throw new StunRefusal(400);
    const byPeer = a.channelForPeer(ip, peer.port, nowSec);
    if (byPeer !== undefined && byPeer.number !== number) throw new StunRefusal(400);
    const needsPermission = !a.hasPermission(ip, nowSec);
    if (live === undefined) {
      if (a.liveChannels(nowSec) >= this.options.maxChannels) throw new StunRefusal(508);
      if (needsPermission && a.livePermissions(nowSec) >= this.options.maxPermissions)
        throw new StunRefusal(508);
      if (byNumber !== undefined) a.unbindChannel(byNumber); // expired binding of this number
      const stale = a.channelsByPeer.get(ip)?.get(peer.port);
      if (stale !== undefined) a.unbindChannel(stale); // expired binding of this peer
      a.bindChannel(new Channel(number, ip, peer.port, nowSec + this.options.channelLifetimeSec));
    } else {
      // Refreshing a live channel whose permission lapsed reinstalls the permission: within the cap.
      if (needsPermission && a.livePermissions(nowSec) >= this.options.maxPermissions)
        throw new StunRefusal(508);
      live.expiresAtSec = nowSec + this.options.channelLifetimeSec;
    }
    a.permissions.set(ip, nowSec + this.options.permissionLifetimeSec);
    const w = this.writer.startResponse(Method.ChannelBind, Class.Success, view.buf);
    return this.finishAuthenticated(w, auth, view.buf);
  }

  // ---------------------------------------------------------------------------------------------
  // Relay (hot path)

  /** RFC 8656 §10.2: Send indication from the client (never authenticated, never answered). */
  sendIndication(view: StunView, endpoint: ClientEndpoint, address: string, port: number): void {
    const a = this.table.find(endpoint, address, port);
    if (a === undefined || a.pending) {
      this.stats.droppedNoAllocation++;
      return;
    }
    const peerIndex = view.find(AttrType.XorPeerAddress);
    const dataIndex = view.find(AttrType.Data);
    if (peerIndex < 0 || dataIndex < 0 || view.has(AttrType.DontFragment)) {
      this.stats.droppedMalformed++;
      return;
    }
    const peers = readAddresses(view, AttrType.XorPeerAddress);
    const peer = peers?.[0];
    if (peer === undefined) {
      this.stats.droppedMalformed++;
      return;
    }
    const relay = a.relayFor(peer.family === Family.IPv4 ? 4 : 6);
    if (relay === undefined || !a.hasPermission(peer.address, this.nowSec)) {
      this.stats.droppedNoPermission++;
      return;
    }
    // The permission is per IP; the port still has to pass (never one of our own service ports,
    // and on our own relay address only relay ports: other ports there are not other allocations).
    if (!this.peerAllowed(peer.address, peer.port)) {
      this.stats.droppedPeerPolicy++;
      return;
    }
    const data = view.value(dataIndex);
    this.toPeer(a, relay, data, peer.address, peer.port);
  }

  /**
   * RFC 8656 §12.6: ChannelData from the client (`buf` is the whole message, its length already
   * checked by the caller). `a` is the client's allocation (looked up by the caller).
   */
  relayChannelData(a: Allocation, buf: Buffer, dataLength: number): void {
    const ch = a.channelsByNumber.get(buf.readUInt16BE(0));
    if (ch === undefined || ch.expiresAtSec <= this.nowSec) {
      this.stats.droppedNoChannel++;
      return;
    }
    const relay = a.relays.length === 1 ? a.relays[0]! : a.relayFor(ch.peerAddress.includes(':') ? 6 : 4);
    if (relay === undefined) return;
    // subarray: a view into the datagram Node handed us; dgram keeps it alive until sent.
    this.toPeer(
      a,
      relay,
      buf.subarray(CHANNEL_HEADER_LENGTH, CHANNEL_HEADER_LENGTH + dataLength),
      ch.peerAddress,
      ch.peerPort,
    );
  }

  private toPeer(
    a: Allocation,
    relay: RelayHandle,
    data: Buffer,
    peerAddress: string,
    peerPort: number,
  ): void {
    // Relay to relay behind 1:1 NAT: our own public address is delivered to the local socket
    // instead of being hairpinned through the NAT.
    const local = this.allocator.localAddressFor(peerAddress);
    relay.send(data, peerPort, local ?? peerAddress);
    a.packetsToPeer++;
    a.bytesToPeer += data.length;
    this.stats.relayedToPeerPackets++;
    this.stats.relayedToPeerBytes += data.length;
  }

  /** RFC 8656 §10.3/§12.6: a datagram from a peer on `relay`: ChannelData or Data indication. */
  onPeerPacket(a: Allocation, relay: RelayHandle, msg: Buffer, fromAddress: string, fromPort: number): void {
    if (a.deleted) return;
    const nowSec = this.nowSec;
    // A packet from one of our own relay sockets carries its local address; peers know it by the
    // advertised one.
    const peerAddress = this.allocator.advertisedAddressFor(fromAddress) ?? fromAddress;
    if (!a.hasPermission(peerAddress, nowSec)) {
      this.stats.droppedNoPermission++;
      return;
    }
    const endpoint = a.endpoint;
    const isStream = endpoint.transport !== 'udp';
    const ch = a.channelForPeer(peerAddress, fromPort, nowSec);
    if (ch !== undefined) {
      if (msg.length > 0xffff) return;
      const hdr = Buffer.allocUnsafe(CHANNEL_HEADER_LENGTH);
      writeChannelHeader(hdr, ch.number, msg.length);
      if (isStream) {
        const pad = streamPadding(msg.length);
        endpoint.sendv(pad === 0 ? [hdr, msg] : [hdr, msg, PADDING[pad]!], a.clientAddress, a.clientPort);
      } else {
        endpoint.sendv([hdr, msg], a.clientAddress, a.clientPort);
      }
    } else {
      const head = dataIndicationHead(peerAddress, fromPort, msg.length, relay.family);
      if (head === undefined) return;
      const pad = streamPadding(msg.length);
      endpoint.sendv(pad === 0 ? [head, msg] : [head, msg, PADDING[pad]!], a.clientAddress, a.clientPort);
    }
    a.packetsToClient++;
    a.bytesToClient += msg.length;
    this.stats.relayedToClientPackets++;
    this.stats.relayedToClientBytes += msg.length;
  }

  // ---------------------------------------------------------------------------------------------
  // Lifecycle

  deleteAllocation(a: Allocation, reason: DeleteReason): void {
    if (a.deleted) return;
    a.deleted = true;
    this.table.remove(a);
    // Still binding its relay: never announced, so not counted; `allocated` closes the sockets.
    if (a.pending) return;
    for (const r of a.relays) r.close();
    this.stats.countAllocationDeleted(reason);
    this.events.allocationDeleted?.(a, reason);
  }

  /** The stream connection `endpoint` closed: its allocations go at once (RFC 8656 §5). */
  endpointClosed(endpoint: ClientEndpoint): void {
    for (const a of [...this.table.ofEndpoint(endpoint)]) this.deleteAllocation(a, 'connection-closed');
  }

  /** Periodic work, once a second: expiry of allocations; pruning of permissions, channels, cache. */
  sweep(nowSec: number): void {
    this.nowSec = nowSec;
    const prune = nowSec - this.lastPruneSec >= 10;
    if (prune) this.lastPruneSec = nowSec;
    for (const a of [...this.table.all()]) {
      if (a.pending) continue;
      if (a.expiresAtSec <= nowSec) this.deleteAllocation(a, 'expired');
      else if (prune) a.prune(nowSec);
    }
    if (prune) this.cache.prune(nowSec);
  }

  /** Deletes every allocation (shutdown). */
  closeAll(reason: DeleteReason): void {
    for (const a of [...this.table.all()]) this.deleteAllocation(a, reason);
  }

  // ---------------------------------------------------------------------------------------------
  // Responses

  private startError(view: StunView, code: number): StunWriter {
    this.stats.countError(code);
    return this.writer
      .startResponse(view.method, Class.Error, view.buf)
      .addErrorCode(code, this.options.reasonPhrases ? reason(code) : '');
  }

  private errorResponse(
    view: StunView,
    code: number,
    auth: AuthSuccess,
    unknown: readonly number[] | undefined,
    alternate: { readonly address: string; readonly port: number } | undefined,
  ): Buffer {
    const w = this.startError(view, code);
    if (unknown !== undefined) w.addUnknownAttributes(unknown);
    if (alternate !== undefined)
      w.addAddress(AttrType.AlternateServer, alternate.address, alternate.port, false);
    return this.finishAuthenticated(w, auth, view.buf);
  }

  private errorFor(request: Buffer, method: number, code: number, auth: AuthSuccess): Buffer {
    this.stats.countError(code);
    const w = this.writer
      .startResponse(method, Class.Error, request)
      .addErrorCode(code, this.options.reasonPhrases ? reason(code) : '');
    return this.finishAuthenticated(w, auth, request);
  }

  private finishAuthenticated(w: StunWriter, auth: AuthSuccess, request: Buffer): Buffer {
    this.stats.countResponse(w.method, w.cls === Class.Success);
    if (this.options.software !== undefined) w.addString(AttrType.Software, this.options.software);
    this.auth.sign(w, auth);
    if (hasFingerprint(request)) w.addFingerprint();
    return w.finish();
  }

  private finishUnauthenticated(w: StunWriter, view: StunView): Buffer {
    this.stats.countResponse(view.method, false);
    if (this.options.software !== undefined) w.addString(AttrType.Software, this.options.software);
    if (view.fingerprintAt >= 0) w.addFingerprint();
    return w.finish();
  }
}

/** Whether a (valid) STUN message ends with FINGERPRINT. */
function hasFingerprint(msg: Buffer): boolean {
  return msg.length >= HEADER_LENGTH + 8 && msg.readUInt16BE(msg.length - 8) === AttrType.Fingerprint;
}

function reason(code: number): string {
  return REASON_PHRASES[code] ?? '';
}

/**
 * The STUN header, XOR-PEER-ADDRESS and DATA attribute header of a Data indication
 * (RFC 8656 §10.3) carrying `dataLength` bytes; the payload and its padding follow as separate
 * buffers. A fresh random transaction ID each time (RFC 8489 §6: indications get new IDs).
 */
function dataIndicationHead(
  peerAddress: string,
  peerPort: number,
  dataLength: number,
  family: 4 | 6,
): Buffer | undefined {
  const addrLen = family === 4 ? 8 : 20;
  const headLen = HEADER_LENGTH + 4 + addrLen + 4;
  const total = headLen - HEADER_LENGTH + dataLength + streamPadding(dataLength);
  if (total > 0xffff) return undefined;
  const b = Buffer.allocUnsafe(headLen);
  b.writeUInt16BE(DATA_INDICATION_TYPE, 0);
  b.writeUInt16BE(total, 2);
  b.writeUInt32BE(MAGIC_COOKIE, 4);
  fillTransactionId(b);
  b.writeUInt16BE(AttrType.XorPeerAddress, 20);
  b.writeUInt16BE(addrLen, 22);
  b[24] = 0;
  b[25] = family === 4 ? Family.IPv4 : Family.IPv6;
  b.writeUInt16BE((peerPort ^ (MAGIC_COOKIE >>> 16)) & 0xffff, 26);
  const ip = parseIp(peerAddress);
  if (ip === undefined || ip.length !== (family === 4 ? 4 : 16)) return undefined;
  for (let k = 0; k < ip.length; k++) b[28 + k] = ip[k]! ^ b[4 + k]!;
  const dataAt = 28 + ip.length;
  b.writeUInt16BE(AttrType.Data, dataAt);
  b.writeUInt16BE(dataLength, dataAt + 2);
  return b;
}

/** Transaction IDs for Data indications come from a pool of random bytes refilled in bulk. */
let tidPool = randomBytes(12 * 1024);
let tidOffset = 0;
function fillTransactionId(b: Buffer): void {
  if (tidOffset + 12 > tidPool.length) {
    tidPool = randomBytes(12 * 1024);
    tidOffset = 0;
  }
  tidPool.copy(b, 8, tidOffset, tidOffset + 12);
  tidOffset += 12;
}
