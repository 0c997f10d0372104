/**
 * RFC 8656 §10.2 Send indication from a client: never authenticated, never answered; dropped
 * (and counted) unless the client has an allocation, the peer a permission, and the peer policy
 * allows the peer's port.
 */
import { AttrType, Family } from '../../constants.js';
import { readAddresses, readXorAddressBytes } from '../../stun/attrs.js';
import type { StunView } from '../../stun/decode.js';
import type { ClientEndpoint } from '../../transport.js';
import type { TurnState } from '../types.js';

/** Scratch for the peer's address bytes (handling is synchronous). */
const peerBytes = new Uint8Array(16);

export function sendIndication(
  s: TurnState,
  view: StunView,
  endpoint: ClientEndpoint,
  address: string,
  port: number,
): void {
  const a = s.table.find(endpoint, address, port);
  if (a === undefined || a.pending) {
    s.stats.droppedNoAllocation++;
    return;
  }
  // RFC 6062: a TCP allocation sends no datagrams.
  if (a.relayTransport === 'tcp') {
    s.stats.droppedUnsupported++;
    return;
  }
  // XOR-PEER-ADDRESS and DATA are required; DONT-FRAGMENT cannot be honoured (see Allocate).
  const dataIndex = view.find(AttrType.Data);
  const peer = readAddresses(view, AttrType.XorPeerAddress)?.[0];
  if (peer === undefined || dataIndex < 0 || view.has(AttrType.DontFragment)) {
    s.stats.droppedMalformed++;
    return;
  }
  const relay = a.relayFor(peer.family === Family.IPv4 ? 4 : 6);
  if (relay === undefined || !s.plane.hasPermission(a, peer.address, s.clock.nowSec())) {
    s.stats.droppedNoPermission++;
    return;
  }
  // The permission is per IP; the port still has to pass (never one of our own service ports, and
  // on our own relay address only relay ports: other ports there are not other allocations). The
  // policy reads the address bytes from the message, not the text again.
  const n = readXorAddressBytes(view, AttrType.XorPeerAddress, peerBytes);
  if (!s.peerAllowed(peer.address, peer.port, n === 0 ? undefined : peerBytes.subarray(0, n))) {
    s.stats.droppedPeerPolicy++;
    return;
  }
  s.plane.sendToPeer(a, relay, view.value(dataIndex), peer.address, peer.port);
}
