/**
 * RFC 6062 §5.2 Connect: the server opens a TCP connection from the allocation's relayed address
 * to the peer and answers once it is open (CONNECTION-ID) or has failed (447). Two phases, like
 * Allocate: the request is checked and the connection registered; the shell's connector reports.
 */
import { AttrType, ErrorCode, Family, Method } from '../../constants.js';
import { readAddresses } from '../../stun/attrs.js';
import type { Allocation } from '../allocation.js';
import { StunError } from '../errors.js';
import { CONNECTION_BIND_TIMEOUT_SEC, DEFAULT_MAX_TCP_CONNECTIONS, TcpState } from '../tcp-relay.js';
import type { TurnRequest, TurnState } from '../types.js';
import { checkPeer } from './peer.js';

export function connect(s: TurnState, r: TurnRequest): null {
  const { view } = r;
  // 1. The allocation of this control connection, owned by this user (437/441); a TCP one (400).
  const a = s.ownAllocation(r);
  const connector = s.tcpConnector;
  if (a.relayTransport !== 'tcp' || connector === undefined) throw new StunError(ErrorCode.BadRequest);
  // 2. Exactly one valid XOR-PEER-ADDRESS (400), of the allocation's family (443), allowed by the
  //    peer policy, port included, as for UDP (403).
  const peers = readAddresses(view, AttrType.XorPeerAddress);
  if (peers?.length !== 1) throw new StunError(ErrorCode.BadRequest);
  const peer = peers[0]!;
  const ip = checkPeer(s, a, peer, true);
  // 3. A connection with this peer being opened, waiting for its ConnectionBind, or bound: 446.
  if (s.tcp.findPeer(a, ip, peer.port) !== undefined) throw new StunError(ErrorCode.ConnectionAlreadyExists);
  // 4. The allocation's connections are capped (tcp-relay-max-connections): 508.
  if (s.tcp.countOf(a) >= (s.options.tcpRelayMaxConnections ?? DEFAULT_MAX_TCP_CONNECTIONS))
    throw new StunError(ErrorCode.InsufficientCapacity);
  const c = s.tcp.add(a, ip, peer.port, true, TcpState.Connecting);
  if (c === undefined) throw new StunError(ErrorCode.InsufficientCapacity);
  const relay = a.relayFor(peer.family === Family.IPv4 ? 4 : 6)!;
  // 5. Connect from the relayed address (our own relay behind 1:1 NAT: its local address).
  const request = Buffer.from(view.buf);
  const auth = r.auth;
  c.pendingConnect = connector.connect(
    c,
    relay,
    s.allocator.localAddressFor(ip) ?? ip,
    peer.port,
    (peerConnection) => {
      c.pendingConnect = undefined;
      if (c.closed || a.deleted) {
        peerConnection?.close();
        return;
      }
      let response: Buffer;
      if (peerConnection === undefined) {
        // The connection failed or timed out: 447, and the peer is free for another Connect.
        s.tcp.close(c);
        s.stats.tcpConnectFailures++;
        response = s.responder.signed(
          s.responder.error(Method.Connect, request, ErrorCode.ConnectionTimeoutOrFailure),
          auth,
          request,
        );
      } else {
        // Open: the peer data connection waits 30 s for the client's ConnectionBind.
        c.peer = peerConnection;
        c.state = TcpState.Pending;
        c.bindDeadlineSec = s.clock.nowSec() + bindTimeoutSec(s);
        s.stats.tcpConnectionsOpened++;
        const w = s.responder.success(Method.Connect, request);
        w.addUint32(AttrType.ConnectionId, c.id);
        response = s.responder.signed(w, auth, request);
      }
      send(a, response);
    },
  );
  return null;
}

export function bindTimeoutSec(s: TurnState): number {
  return s.options.tcpConnectionBindTimeoutSec ?? CONNECTION_BIND_TIMEOUT_SEC;
}

function send(a: Allocation, buf: Buffer): void {
  a.endpoint.send(buf, a.clientAddress, a.clientPort);
}
