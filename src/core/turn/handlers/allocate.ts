/**
 * RFC 8656 §7.2 Allocate (RFC 6156 §4.2 for address families). Two phases: the request is checked
 * and the allocation registered as pending; the relay sockets are bound by the shell, and
 * `allocated` answers once they are (or are not).
 */
import type { AuthSuccess } from '../../auth/authenticate.js';
import { AttrType, ErrorCode, Family, Transport } from '../../constants.js';
import { unmapped } from '../../ip.js';
import { readBytes, readEvenPort, readLeadingByte, readUint32 } from '../../stun/attrs.js';
import type { StunView } from '../../stun/decode.js';
import { Allocation } from '../allocation.js';
import { StunError } from '../errors.js';
import { newGeneration } from '../mobility.js';
import type { RelayRequest, RelayResult, TurnRequest, TurnState } from '../types.js';

const DONT_FRAGMENT_UNSUPPORTED: readonly number[] = Object.freeze([AttrType.DontFragment]);

export function allocate(s: TurnState, r: TurnRequest): null {
  const { view, auth } = r;
  // 1. The request is authenticated (done by the dispatcher).
  // 2. The 5-tuple is in use: a retransmission (same transaction ID) while the relay is still being
  //    bound is dropped silently (a finished one was answered from the cache); anything else is 437.
  const existing = s.table.find(r.endpoint, r.address, r.port);
  if (existing !== undefined) {
    if (existing.username !== auth.username) throw new StunError(ErrorCode.WrongCredentials);
    if (existing.pending && existing.allocateTid === transactionId(view)) return null;
    throw new StunError(ErrorCode.AllocationMismatch);
  }
  // 3. REQUESTED-TRANSPORT is required: UDP, or TCP (RFC 6062 §5.1) when `tcp-relay` is on (else 442).
  const transport = readLeadingByte(view, AttrType.RequestedTransport);
  if (transport === undefined) throw new StunError(ErrorCode.BadRequest);
  const tcp = transport === Transport.TCP && s.options.tcpRelay === true && s.tcpConnector !== undefined;
  if (transport !== Transport.UDP && !tcp) throw new StunError(ErrorCode.UnsupportedTransportProtocol);
  // RFC 6062 §5.1: a TCP allocation needs a TCP or TLS client connection, and takes no
  // DONT-FRAGMENT, EVEN-PORT or RESERVATION-TOKEN (400). One relayed address: no dual allocation.
  if (
    tcp &&
    (r.endpoint.transport === 'udp' ||
      view.has(AttrType.DontFragment) ||
      view.has(AttrType.EvenPort) ||
      view.has(AttrType.ReservationToken) ||
      view.has(AttrType.AdditionalAddressFamily))
  )
    throw new StunError(ErrorCode.BadRequest);
  // 4. DONT-FRAGMENT: Node cannot set DF on a UDP socket (no IP_MTU_DISCOVER), so the attribute is
  //    treated as unknown comprehension-required, as the RFC allows.
  if (view.has(AttrType.DontFragment))
    throw new StunError(ErrorCode.UnknownAttribute, { unknown: DONT_FRAGMENT_UNSUPPORTED });
  // RFC 8016 §3.2: an empty MOBILITY-TICKET asks for a mobile allocation: 405 when mobility is not
  // allowed; a ticket with content has no meaning in an Allocate (400).
  const mobileIndex = view.find(AttrType.MobilityTicket);
  if (mobileIndex >= 0) {
    if (s.options.mobility !== true) {
      s.stats.countMobilityRefused('disabled');
      throw new StunError(ErrorCode.MobilityForbidden);
    }
    if (view.attrLen[mobileIndex] !== 0) throw new StunError(ErrorCode.BadRequest);
  }
  // 5./6. RESERVATION-TOKEN excludes EVEN-PORT and the address-family attributes.
  const token = readBytes(view, AttrType.ReservationToken);
  const even = readEvenPort(view);
  const rafIndex = view.find(AttrType.RequestedAddressFamily);
  const aafIndex = view.find(AttrType.AdditionalAddressFamily);
  if (token !== undefined && (token.length !== 8 || even !== undefined || rafIndex >= 0 || aafIndex >= 0))
    throw new StunError(ErrorCode.BadRequest);
  // EVEN-PORT reserving the next port cannot go with a dual allocation.
  if (even?.reserveNext === true && aafIndex >= 0) throw new StunError(ErrorCode.BadRequest);
  if (view.has(AttrType.EvenPort) && even === undefined) throw new StunError(ErrorCode.BadRequest);
  // Address families: REQUESTED-ADDRESS-FAMILY picks one; ADDITIONAL-ADDRESS-FAMILY (IPv6 only)
  // asks for a second relay address; both together are a bad request.
  let family = defaultFamily(s, r.address);
  if (rafIndex >= 0) {
    if (aafIndex >= 0) throw new StunError(ErrorCode.BadRequest);
    const raf = readLeadingByte(view, AttrType.RequestedAddressFamily);
    if (raf === Family.IPv4) family = 4;
    else if (raf === Family.IPv6) family = 6;
    else throw new StunError(ErrorCode.AddressFamilyNotSupported);
  }
  let additional = false;
  if (aafIndex >= 0) {
    if (readLeadingByte(view, AttrType.AdditionalAddressFamily) !== Family.IPv6)
      throw new StunError(ErrorCode.BadRequest);
    additional = true;
  }
  if (!s.allocator.supports(family)) throw new StunError(ErrorCode.AddressFamilyNotSupported);
  // Fleet mode: over this node's load threshold, or draining, send the client to the least-loaded
  // healthy node (RFC 8489 §10, 300 Try Alternate).
  const fleetAlternate = s.admission?.redirect(s.draining, unmapped(r.address).includes(':') ? 6 : 4);
  if (fleetAlternate !== undefined)
    throw new StunError(ErrorCode.TryAlternate, { alternate: fleetAlternate });
  if (s.draining) {
    // RFC 8489 §10: send the client elsewhere (in turn over the configured alternates), or refuse.
    const alternates = s.options.alternateServers ?? [];
    if (alternates.length === 0) throw new StunError(ErrorCode.InsufficientCapacity);
    const alternate = alternates[s.nextAlternate++ % alternates.length]!;
    throw new StunError(ErrorCode.TryAlternate, { alternate });
  }
  // 7. Quotas: per user (the REST userid) 486; in total, the server's capacity, 508.
  if (s.options.userQuota > 0 && s.table.userCount(auth.userId) >= s.options.userQuota)
    throw new StunError(ErrorCode.AllocationQuotaReached);
  const totalQuota = s.admission?.totalQuota() ?? s.options.totalQuota;
  if (totalQuota > 0 && s.table.size >= totalQuota) throw new StunError(ErrorCode.InsufficientCapacity);
  // 8. LIFETIME: the requested value, raised to the default and capped at the maximum.
  const a = new Allocation(
    s.newAllocationId(),
    r.endpoint,
    r.address,
    r.port,
    auth.username,
    auth.userId,
    r.nowSec,
    grantedLifetime(s, view),
    transactionId(view),
  );
  if (tcp) a.relayTransport = 'tcp';
  if (mobileIndex >= 0) a.mobilityGeneration = newGeneration();
  s.table.add(a);
  s.events.emitAllocationRequested(a);
  const requests: RelayRequest[] = [
    {
      family,
      evenPort: even !== undefined,
      reserveNext: even?.reserveNext ?? false,
      reservationToken: token,
      ...(tcp ? { transport: 'tcp' as const } : {}),
    },
  ];
  if (additional && s.allocator.supports(6))
    requests.push({ family: 6, evenPort: false, reserveNext: false, reservationToken: undefined });
  // The request's bytes are only valid during this call: keep what the answer needs.
  const request = Buffer.from(view.buf);
  const bind = (): void =>
    s.allocator.allocate(a, requests, (results) => allocated(s, r, a, request, results, additional));
  const admission = s.admission;
  if (admission === undefined) bind();
  else {
    // Fleet admission (the fleet-wide user quota) while the allocation is pending.
    admission.admit(a, (verdict) => {
      if (verdict === 0 && !a.deleted) bind();
      else {
        if (verdict === 0) admission.abandon(a);
        refused(s, r, a, request, verdict === 0 ? ErrorCode.InsufficientCapacity : verdict);
      }
    });
  }
  return null;
}

/** The pending allocation `a` is refused after all (fleet admission): it goes, the client gets `code`. */
function refused(s: TurnState, r: TurnRequest, a: Allocation, request: Buffer, code: number): void {
  s.table.remove(a);
  a.deleted = true;
  const response = s.responder.signed(s.responder.error(r.view.method, request, code), r.auth, request);
  s.cache.set(r.cacheKey, response, s.clock.nowSec());
  a.endpoint.send(response, a.clientAddress, a.clientPort);
}

/** Second phase: the relay sockets are bound (or not); answers through the client's endpoint. */
function allocated(
  s: TurnState,
  r: TurnRequest,
  a: Allocation,
  request: Buffer,
  results: RelayResult[],
  additional: boolean,
): void {
  const first = results[0];
  const auth: AuthSuccess = r.auth;
  let response: Buffer;
  if (a.deleted || first === undefined || !first.ok) {
    for (const result of results) if (result.ok) result.relay.close();
    s.admission?.abandon(a);
    s.table.remove(a);
    a.deleted = true;
    s.stats.allocateFailures++;
    response = s.responder.signed(
      s.responder.error(r.view.method, request, ErrorCode.InsufficientCapacity),
      auth,
      request,
    );
  } else {
    a.relays = [];
    for (const result of results) if (result.ok) a.relays.push(result.relay);
    const w = s.responder.success(r.view.method, request);
    for (const relay of a.relays)
      w.addAddress(AttrType.XorRelayedAddress, relay.advertisedAddress, relay.port, true);
    // The IPv6 half of a dual allocation failed: 440 when the server has no IPv6 relay address (it
    // was not even tried), else the reason it failed (508: no port could be bound).
    if (additional && a.relays.length < 2) {
      const v6 = results[1];
      w.addAddressErrorCode(
        Family.IPv6,
        v6 !== undefined && !v6.ok ? v6.code : ErrorCode.AddressFamilyNotSupported,
      );
    }
    // What is left of the lifetime granted at the request: the bind may have taken a while.
    w.addUint32(AttrType.Lifetime, a.expiresAtSec - s.clock.nowSec());
    if (first.reservationToken !== undefined) w.addBytes(AttrType.ReservationToken, first.reservationToken);
    if (a.mobilityGeneration !== 0) w.addBytes(AttrType.MobilityTicket, s.tickets.mint(a));
    w.addAddress(AttrType.XorMappedAddress, unmapped(a.clientAddress), a.clientPort, true);
    response = s.responder.signed(w, auth, request);
    s.activate(a);
  }
  s.cache.set(r.cacheKey, response, s.clock.nowSec());
  a.endpoint.send(response, a.clientAddress, a.clientPort);
}

/** RFC 8656 §7.2 item 7 / §8: the requested LIFETIME, at least the default, at most the maximum. */
export function grantedLifetime(s: TurnState, view: StunView): number {
  const requested = readUint32(view, AttrType.Lifetime);
  const { defaultLifetimeSec, maxLifetimeSec } = s.options;
  const wanted = requested === undefined || requested < defaultLifetimeSec ? defaultLifetimeSec : requested;
  return Math.min(wanted, maxLifetimeSec);
}

/** The relay family for an Allocate from `clientAddress` that names none (TurnOptions.defaultFamily). */
function defaultFamily(s: TurnState, clientAddress: string): 4 | 6 {
  const policy = s.options.defaultFamily ?? 'ipv4';
  let family: 4 | 6 = 4;
  if (policy === 'ipv6' || (policy === 'keep' && unmapped(clientAddress).includes(':'))) family = 6;
  if (!s.allocator.supports(family)) family = family === 4 ? 6 : 4;
  return family;
}

/** The transaction ID as 12 latin1 characters (the same form as the response cache's keys). */
function transactionId(view: StunView): string {
  return view.buf.toString('latin1', 8, 20);
}
