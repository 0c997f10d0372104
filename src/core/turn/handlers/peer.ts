/** The checks of an XOR-PEER-ADDRESS shared by CreatePermission and ChannelBind. */
import { ErrorCode, Family } from '../../constants.js';
import type { TransportAddress } from '../../stun/attrs.js';
import type { Allocation } from '../allocation.js';
import { StunError } from '../errors.js';
import type { TurnState } from '../types.js';

/**
 * The peer's family must be one the allocation relays (443, RFC 6156 §5.1), and the peer policy
 * must allow it (403, RFC 8656 §9.1); `withPort` also checks the port (ChannelBind). Returns the
 * peer's IP.
 */
export function checkPeer(s: TurnState, a: Allocation, peer: TransportAddress, withPort: boolean): string {
  if (a.relayFor(peer.family === Family.IPv4 ? 4 : 6) === undefined)
    throw new StunError(ErrorCode.PeerAddressFamilyMismatch);
  if (s.peerAllowed(peer.address, withPort ? peer.port : undefined)) return peer.address;
  s.stats.peerRefusals++;
  throw new StunError(ErrorCode.Forbidden);
}
