/** RFC 8656 §11.2 ChannelBind: binds or refreshes a channel, and installs the peer's permission. */
import { isValidChannel } from '../../channel-data.js';
import { AttrType, ErrorCode } from '../../constants.js';
import { readAddresses, readChannelNumber } from '../../stun/attrs.js';
import { StunError } from '../errors.js';
import type { TurnRequest, TurnState } from '../types.js';
import { checkPeer } from './peer.js';

export function channelBind(s: TurnState, r: TurnRequest): Buffer {
  const { view, nowSec } = r;
  const plane = s.plane;
  // 1. The allocation of this 5-tuple, owned by this user (437/441).
  const a = s.ownAllocation(r);
  // RFC 6062: a TCP allocation relays TCP connections, not datagrams: no channels (400).
  if (a.relayTransport === 'tcp') throw new StunError(ErrorCode.BadRequest);
  // 2. CHANNEL-NUMBER in range and exactly one XOR-PEER-ADDRESS (400); the peer of a family the
  //    allocation relays (443) and allowed, port included (403).
  const number = readChannelNumber(view);
  const peers = readAddresses(view, AttrType.XorPeerAddress);
  if (number === undefined || !isValidChannel(number, s.options.maxChannel) || peers?.length !== 1)
    throw new StunError(ErrorCode.BadRequest);
  const peer = peers[0]!;
  const ip = checkPeer(s, a, peer, true);
  // 3. The channel is bound to another peer, or the peer to another channel: 400.
  const live = plane.channel(a, number, nowSec);
  if (live !== undefined && (live.peerAddress !== ip || live.peerPort !== peer.port))
    throw new StunError(ErrorCode.BadRequest);
  const byPeer = plane.channelForPeer(a, ip, peer.port, nowSec);
  if (byPeer !== undefined && byPeer.number !== number) throw new StunError(ErrorCode.BadRequest);
  // 4. A new channel must fit under max-channels, and a permission it adds under max-permissions
  //    (508); refreshing a live channel whose permission lapsed reinstalls the permission.
  const needsPermission = !plane.hasPermission(a, ip, nowSec);
  if (live === undefined && plane.liveChannels(a, nowSec) >= s.options.maxChannels)
    throw new StunError(ErrorCode.InsufficientCapacity);
  if (needsPermission && plane.livePermissions(a, nowSec) >= s.options.maxPermissions)
    throw new StunError(ErrorCode.InsufficientCapacity);
  // 5. Bind (or refresh) for the channel lifetime (600 s), and the permission for its own (300 s).
  plane.bindChannel(a, number, ip, peer.port, nowSec + s.options.channelLifetimeSec);
  plane.setPermission(a, ip, nowSec + s.options.permissionLifetimeSec);
  s.events.emitChannelBound(a, number, ip, peer.port);
  return s.responder.signed(s.responder.success(view.method, view.buf), r.auth, view.buf);
}
