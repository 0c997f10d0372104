/** RFC 8656 §9.2 CreatePermission: every XOR-PEER-ADDRESS is installed, or none. */
import { AttrType, ErrorCode } from '../../constants.js';
import { readAddresses } from '../../stun/attrs.js';
import { StunError } from '../errors.js';
import type { TurnRequest, TurnState } from '../types.js';
import { checkPeer } from './peer.js';

export function createPermission(s: TurnState, r: TurnRequest): Buffer {
  const { view, nowSec } = r;
  // 1. The allocation of this 5-tuple, owned by this user (437/441).
  const a = s.ownAllocation(r);
  // 2. At least one XOR-PEER-ADDRESS (400); each of a family the allocation relays (443) and
  //    allowed by the peer policy (403). Any refusal installs nothing.
  const peers = readAddresses(view, AttrType.XorPeerAddress);
  if (peers === undefined || peers.length === 0) throw new StunError(ErrorCode.BadRequest);
  const ips = [...new Set(peers.map((p) => checkPeer(s, a, p, false)))];
  // 3. New permissions must fit under max-permissions (508); refreshing existing ones always does.
  let fresh = 0;
  for (const ip of ips) if (!s.plane.hasPermission(a, ip, nowSec)) fresh++;
  if (fresh > 0 && s.plane.livePermissions(a, nowSec) + fresh > s.options.maxPermissions)
    throw new StunError(ErrorCode.InsufficientCapacity);
  // 4. Install or refresh each for the permission lifetime (RFC 8656 §9: 300 s).
  const expiresAtSec = nowSec + s.options.permissionLifetimeSec;
  for (const ip of ips) s.plane.setPermission(a, ip, expiresAtSec);
  s.events.emitPermissionsSet(a, ips);
  return s.responder.signed(s.responder.success(view.method, view.buf), r.auth, view.buf);
}
