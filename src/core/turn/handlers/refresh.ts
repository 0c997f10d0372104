/**
 * RFC 8656 §8.2 Refresh (RFC 6156 §5.2 for the address family); LIFETIME 0 deletes the allocation.
 * RFC 8016 §3.4: a Refresh with a MOBILITY-TICKET from a 5-tuple without an allocation moves the
 * ticket's allocation there; every success to a mobile allocation carries a fresh ticket.
 */
import { AttrType, ErrorCode, Family } from '../../constants.js';
import { readLeadingByte, readUint32 } from '../../stun/attrs.js';
import type { Allocation } from '../allocation.js';
import { StunError } from '../errors.js';
import type { TicketRefusal } from '../mobility.js';
import type { TurnRequest, TurnState } from '../types.js';
import { grantedLifetime } from './allocate.js';

export function refresh(s: TurnState, r: TurnRequest): Buffer {
  const { view } = r;
  // 1. The allocation of this 5-tuple, owned by this user (437/441); from a 5-tuple without one,
  //    the allocation a MOBILITY-TICKET names (RFC 8016), moved only once every check has passed.
  const ticketIndex = view.find(AttrType.MobilityTicket);
  const own = s.table.find(r.endpoint, r.address, r.port);
  const mover = own === undefined && ticketIndex >= 0 ? ticketAllocation(s, r, ticketIndex) : undefined;
  const a = mover ?? s.ownAllocation(r);
  // 2. REQUESTED-ADDRESS-FAMILY names a family the allocation has, else 443.
  const raf = readLeadingByte(view, AttrType.RequestedAddressFamily);
  if (raf !== undefined) {
    const family = raf === Family.IPv4 ? 4 : raf === Family.IPv6 ? 6 : 0;
    if (family === 0 || a.relayFor(family) === undefined)
      throw new StunError(ErrorCode.PeerAddressFamilyMismatch);
  }
  // RFC 8016: the allocation moves to this 5-tuple; the old one is served no more.
  if (mover !== undefined && !s.moveAllocation(mover, r.endpoint, r.address, r.port))
    throw refusal(s, 'transport');
  // 3. LIFETIME 0 deletes the allocation; otherwise the granted lifetime starts now.
  let granted = 0;
  if (readUint32(view, AttrType.Lifetime) === 0) s.deleteAllocation(a, 'refreshed-to-zero');
  else {
    granted = grantedLifetime(s, view);
    a.expiresAtSec = r.nowSec + granted;
    s.events.emitAllocationRefreshed(a, granted);
  }
  // The ticket is minted before the response is started (the writer is shared).
  const ticket =
    granted > 0 && a.mobilityGeneration !== 0 && s.options.mobility === true ? s.tickets.mint(a) : undefined;
  const w = s.responder.success(view.method, view.buf);
  w.addUint32(AttrType.Lifetime, granted);
  if (ticket !== undefined) w.addBytes(AttrType.MobilityTicket, ticket);
  return s.responder.signed(w, r.auth, view.buf);
}

/**
 * RFC 8016 §3.4: the allocation the ticket at `index` moves to the request's 5-tuple. 405 when
 * mobility is off or the ticket is not good (forged, for other credentials, expired, issued before
 * the allocation last moved, its allocation gone) or from another transport; 400 for an empty one.
 */
function ticketAllocation(s: TurnState, r: TurnRequest, index: number): Allocation {
  if (s.options.mobility !== true) throw refusal(s, 'disabled');
  const ticket = r.view.value(index);
  if (ticket.length === 0) throw new StunError(ErrorCode.BadRequest);
  const a = s.tickets.check(ticket, r.auth.username, r.nowSec);
  if (typeof a === 'string') throw refusal(s, a);
  // The MAC covers the USERNAME: a ticket that verified is the requester's own allocation.
  if (a.username !== r.auth.username) throw new StunError(ErrorCode.WrongCredentials);
  if (a.endpoint.transport !== r.endpoint.transport) throw refusal(s, 'transport');
  return a;
}

function refusal(s: TurnState, reason: TicketRefusal): StunError {
  s.stats.countMobilityRefused(reason);
  return new StunError(ErrorCode.MobilityForbidden);
}
