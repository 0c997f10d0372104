/**
 * RFC 6062 §5.4 ConnectionBind: on a new TCP/TLS connection from the client, authenticated like
 * every TURN request (the allocation's own user, 441 otherwise), names a peer data connection
 * waiting for its bind by CONNECTION-ID. After the success response the client connection carries
 * that peer connection's bytes, as they are, both ways.
 */
import { AttrType, ErrorCode } from '../../constants.js';
import { readUint32 } from '../../stun/attrs.js';
import { StunError } from '../errors.js';
import { isDataConnectionEndpoint, TcpState } from '../tcp-relay.js';
import type { TurnRequest, TurnState } from '../types.js';

export function connectionBind(s: TurnState, r: TurnRequest): null {
  const { view, endpoint } = r;
  // 1. Over TCP or TLS only (400).
  if (endpoint.transport === 'udp' || !isDataConnectionEndpoint(endpoint))
    throw new StunError(ErrorCode.BadRequest);
  // 2. Not on a control connection: one that holds an allocation cannot become a data connection (400).
  if (!s.table.ofEndpoint(endpoint).next().done) throw new StunError(ErrorCode.BadRequest);
  // 3. CONNECTION-ID names a peer data connection waiting for its bind (400: missing, unknown,
  //    already bound, still connecting, or closed after its 30 s).
  const id = readUint32(view, AttrType.ConnectionId);
  const c = id === undefined ? undefined : s.tcp.get(id);
  if (c === undefined || c.state !== TcpState.Pending || c.peer === undefined || c.allocation.deleted)
    throw new StunError(ErrorCode.BadRequest);
  // 4. The same credentials as the allocation (441).
  if (c.allocation.username !== r.auth.username) throw new StunError(ErrorCode.WrongCredentials);
  // 5. Answer, then pipe: the shell writes the response before any relayed byte.
  const response = s.responder.signed(s.responder.success(view.method, view.buf), r.auth, view.buf);
  if (!endpoint.becomeDataConnection(response, c.peer, c)) {
    s.tcp.close(c);
    return null;
  }
  c.state = TcpState.Bound;
  s.stats.tcpConnectionsBound++;
  return null;
}
