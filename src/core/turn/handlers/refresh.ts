/** RFC 8656 §8.2 Refresh (RFC 6156 §5.2 for the address family); LIFETIME 0 deletes the allocation. */
import { AttrType, ErrorCode, Family } from '../../constants.js';
import { readLeadingByte, readUint32 } from '../../stun/attrs.js';
import { StunError } from '../errors.js';
import type { TurnRequest, TurnState } from '../types.js';
import { grantedLifetime } from './allocate.js';

export function refresh(s: TurnState, r: TurnRequest): Buffer {
  const { view } = r;
  // 1. The allocation of this 5-tuple, owned by this user (437/441).
  const a = s.ownAllocation(r);
  // 2. REQUESTED-ADDRESS-FAMILY names a family the allocation has, else 443.
  const raf = readLeadingByte(view, AttrType.RequestedAddressFamily);
  if (raf !== undefined) {
    const family = raf === Family.IPv4 ? 4 : raf === Family.IPv6 ? 6 : 0;
    if (family === 0 || a.relayFor(family) === undefined)
      throw new StunError(ErrorCode.PeerAddressFamilyMismatch);
  }
  // 3. LIFETIME 0 deletes the allocation; otherwise the granted lifetime starts now.
  let granted = 0;
  if (readUint32(view, AttrType.Lifetime) === 0) s.deleteAllocation(a, 'refreshed-to-zero');
  else {
    granted = grantedLifetime(s, view);
    a.expiresAtSec = r.nowSec + granted;
    s.events.emitAllocationRefreshed(a, granted);
  }
  const w = s.responder.success(view.method, view.buf);
  w.addUint32(AttrType.Lifetime, granted);
  return s.responder.signed(w, r.auth, view.buf);
}
