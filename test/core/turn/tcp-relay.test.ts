/**
 * RFC 6062 TCP allocations in the sans-I/O core: Allocate with REQUESTED-TRANSPORT TCP (§5.1),
 * Connect (§5.2: 437, 400, 403, 443, 446, 447, 508, CONNECTION-ID), incoming peer connections
 * (§5.3: permission, peer policy, cap, ConnectionAttempt), ConnectionBind (§5.4: 400 on UDP, on a
 * control connection, for an unknown/expired/bound CONNECTION-ID; 441 for another user), the 30 s
 * bind timeout, and every connection closing with its allocation. The shell is faked: a connector
 * that records Connects and completes them on demand, peer connections that count their closes,
 * and TCP endpoints that record becoming a data connection.
 */
import t from 'tap';
import { AttrType, Class, Method, Transport } from '../../../src/core/constants.js';
import { PeerPolicy } from '../../../src/core/peer-policy.js';
import { readAddress, readUint32 } from '../../../src/core/stun/attrs.js';
import type { RelayHandle } from '../../../src/core/transport.js';
import {
  type DataConnectionEndpoint,
  type PeerConnection,
  type PendingConnect,
  type TcpConnection,
  type TcpConnector,
  TcpState,
} from '../../../src/core/turn/tcp-relay.js';
import {
  ALICE,
  type Build,
  DEFAULT_POLICY_OPTIONS,
  decode,
  FakeEndpoint,
  failure,
  Harness,
  type HarnessOptions,
  MALLORY,
  RELAY_V4,
  requestedTransport,
  success,
  summarize,
} from '../../fixtures/helpers/turn-core-harness.js';

const CLIENT = '192.0.2.60';
const PEER = '198.51.100.20';

class FakePeer implements PeerConnection {
  closes = 0;
  close(): void {
    this.closes++;
  }
}

interface ConnectCall {
  readonly connection: TcpConnection;
  readonly relay: RelayHandle;
  readonly address: string;
  readonly port: number;
  readonly done: (peer: PeerConnection | undefined) => void;
  cancelled: boolean;
}

class FakeConnector implements TcpConnector {
  readonly calls: ConnectCall[] = [];
  connect(
    connection: TcpConnection,
    relay: RelayHandle,
    address: string,
    port: number,
    done: (peer: PeerConnection | undefined) => void,
  ): PendingConnect {
    const call: ConnectCall = { connection, relay, address, port, done, cancelled: false };
    this.calls.push(call);
    return { cancel: () => (call.cancelled = true) };
  }
}

/** A TCP connection from the client that can become a data connection. */
class DataEndpoint extends FakeEndpoint implements DataConnectionEndpoint {
  readonly bound: { response: Buffer; peer: PeerConnection; connection: TcpConnection }[] = [];
  refuse = false;
  constructor() {
    super('tcp');
  }
  becomeDataConnection(response: Buffer, peer: PeerConnection, connection: TcpConnection): boolean {
    if (this.refuse) return false;
    this.bound.push({ response: Buffer.from(response), peer, connection });
    return true;
  }
}

function tcpTransport(extra?: Build): Build {
  return (w) => {
    w.addLeadingByte(AttrType.RequestedTransport, Transport.TCP);
    extra?.(w);
  };
}

const peerAddress =
  (address: string, port: number): Build =>
  (w) =>
    w.addAddress(AttrType.XorPeerAddress, address, port, true);

function world(o: HarnessOptions = {}) {
  const connector = new FakeConnector();
  const h = new Harness({ ...o, tcpConnector: connector, turn: { tcpRelay: true, ...o.turn } });
  const control = new DataEndpoint();
  const c = h.client(ALICE, CLIENT, 50000, control);
  const allocated = c.allocate(tcpTransport());
  return { h, connector, control, c, allocated };
}

/** The last message sent on `e`, decoded. */
const last = (e: FakeEndpoint) => decode(e.sent.at(-1)!.buf);

t.test(
  'Allocate TCP: 442 while tcp-relay is off or without a connector; 400 over UDP and with UDP-only attributes',
  async (t) => {
    const off = new Harness({ tcpConnector: new FakeConnector() });
    const a = off.client(ALICE, CLIENT, 1, new DataEndpoint());
    t.same(summarize(a.allocate(tcpTransport()), ALICE), failure(Method.Allocate, 442), 'tcp-relay off');
    const noShell = new Harness({ turn: { tcpRelay: true } });
    const b = noShell.client(ALICE, CLIENT, 2, new DataEndpoint());
    t.same(summarize(b.allocate(tcpTransport()), ALICE), failure(Method.Allocate, 442), 'no connector');

    const h = new Harness({ tcpConnector: new FakeConnector(), turn: { tcpRelay: true } });
    const udp = h.client(ALICE, CLIENT, 3);
    t.same(summarize(udp.allocate(tcpTransport()), ALICE), failure(Method.Allocate, 400), 'UDP client: 400');
    const extras: [string, Build][] = [
      ['DONT-FRAGMENT', (w) => w.addFlag(AttrType.DontFragment)],
      ['EVEN-PORT', (w) => w.addEvenPort(false)],
      ['RESERVATION-TOKEN', (w) => w.addBytes(AttrType.ReservationToken, Buffer.alloc(8, 1))],
      ['ADDITIONAL-ADDRESS-FAMILY', (w) => w.addLeadingByte(AttrType.AdditionalAddressFamily, 2)],
    ];
    let port = 10;
    for (const [name, extra] of extras) {
      const c = h.client(ALICE, CLIENT, port++, new DataEndpoint());
      t.same(summarize(c.allocate(tcpTransport(extra)), ALICE), failure(Method.Allocate, 400), name);
    }
    t.equal(h.service.allocationCount, 0, 'nothing allocated');
    const other = h.client(ALICE, CLIENT, 99, new DataEndpoint());
    t.equal(
      summarize(other.allocate(tcpTransport((w) => w.addUint32(AttrType.Lifetime, 700))))?.cls,
      'success',
    );
  },
);

t.test(
  'Allocate TCP: a TCP relay is requested; it counts against the quotas like any allocation',
  async (t) => {
    const { h, c, allocated } = world({ turn: { userQuota: 1 } });
    t.same(summarize(allocated, ALICE), success(Method.Allocate));
    t.equal(readAddress(allocated!.view, AttrType.XorRelayedAddress)?.address, RELAY_V4.advertised);
    t.notOk(allocated!.view.has(AttrType.ReservationToken));
    t.equal(c.allocation()?.relayTransport, 'tcp');
    t.equal(h.allocator.calls[0]?.requests[0]?.transport, 'tcp');
    const second = h.client(ALICE, CLIENT, 50001, new DataEndpoint());
    t.same(summarize(second.allocate(tcpTransport()), ALICE), failure(Method.Allocate, 486), 'user quota');
    const udp = h.client(ALICE, CLIENT, 50002);
    t.same(summarize(udp.allocate(requestedTransport()), ALICE), failure(Method.Allocate, 486));
  },
);

t.test('Connect: success answers with CONNECTION-ID once the connection is open', async (t) => {
  const { h, connector, control, c } = world();
  t.equal(c.request(Method.Connect, peerAddress(PEER, 8080)), null, 'no answer until the connection is open');
  const call = connector.calls[0]!;
  t.equal(call.address, PEER);
  t.equal(call.port, 8080);
  t.equal(call.relay, c.relay(), 'from the relayed address');
  t.equal(call.connection.state, TcpState.Connecting);
  const peer = new FakePeer();
  call.done(peer);
  const reply = last(control);
  t.same(summarize(reply, ALICE), success(Method.Connect));
  const id = readUint32(reply.view, AttrType.ConnectionId);
  t.equal(id, call.connection.id);
  t.equal(h.service.tcp.get(id!)?.state, TcpState.Pending);
  t.equal(h.stats.tcpConnectionsOpened, 1);
  t.same(h.service.tcp.counts(), { connecting: 0, pending: 1, bound: 0 });
  t.equal([...h.service.allocations()][0]?.tcpConnections, 1);
});

t.test('Connect to our own relay behind 1:1 NAT goes to its local address', async (t) => {
  const { connector, c } = world({ policy: { allowed: [...DEFAULT_POLICY_OPTIONS.allowed] } });
  c.request(Method.Connect, peerAddress(RELAY_V4.advertised, 49153));
  t.equal(connector.calls[0]?.address, RELAY_V4.local);
});

t.test(
  'Connect errors: 437 without allocation, 400 on a UDP allocation or without one peer, 443, 403',
  async (t) => {
    const { h, connector, c } = world();
    const stranger = h.client(ALICE, CLIENT, 1234, new DataEndpoint());
    t.same(
      summarize(stranger.request(Method.Connect, peerAddress(PEER, 80)), ALICE),
      failure(Method.Connect, 437),
    );
    const udp = h.client(ALICE, CLIENT, 1235);
    udp.allocate();
    t.same(
      summarize(udp.request(Method.Connect, peerAddress(PEER, 80)), ALICE),
      failure(Method.Connect, 400),
    );
    t.same(summarize(c.request(Method.Connect), ALICE), failure(Method.Connect, 400), 'no peer');
    t.same(
      summarize(
        c.request(Method.Connect, (w) => {
          peerAddress(PEER, 80)(w);
          peerAddress('198.51.100.21', 80)(w);
        }),
        ALICE,
      ),
      failure(Method.Connect, 400),
      'two peers',
    );
    t.same(
      summarize(c.request(Method.Connect, peerAddress('2001:db8::1', 80)), ALICE),
      failure(Method.Connect, 443),
    );
    const refusals = h.stats.peerRefusals;
    for (const denied of ['10.0.0.1', '127.0.0.1', '169.254.169.254', '0.0.0.0'])
      t.same(
        summarize(c.request(Method.Connect, peerAddress(denied, 80)), ALICE),
        failure(Method.Connect, 403),
        denied,
      );
    t.same(
      summarize(c.request(Method.Connect, peerAddress('198.51.100.1', 3478)), ALICE),
      failure(Method.Connect, 403),
      "the server's own listener",
    );
    t.same(
      summarize(c.request(Method.Connect, peerAddress(PEER, 0)), ALICE),
      failure(Method.Connect, 403),
      'port 0',
    );
    t.equal(h.stats.peerRefusals, refusals + 6);
    const other = h.client(MALLORY, CLIENT, 50000, c.endpoint);
    t.same(
      summarize(other.request(Method.Connect, peerAddress(PEER, 80)), MALLORY),
      failure(Method.Connect, 441),
    );
    t.equal(connector.calls.length, 0, 'no connection attempted');
  },
);

t.test('Connect: 446 while connecting, pending or bound; 447 on failure frees the peer', async (t) => {
  const { h, connector, control, c } = world();
  c.request(Method.Connect, peerAddress(PEER, 80));
  t.same(
    summarize(c.request(Method.Connect, peerAddress(PEER, 80)), ALICE),
    failure(Method.Connect, 446),
    'connecting',
  );
  connector.calls[0]!.done(undefined);
  t.same(summarize(last(control), ALICE), failure(Method.Connect, 447));
  t.equal(h.stats.tcpConnectFailures, 1);
  t.equal(h.service.tcp.size, 0);
  c.request(Method.Connect, peerAddress(PEER, 80));
  t.equal(connector.calls.length, 2, 'the same peer can be tried again');
  connector.calls[1]!.done(new FakePeer());
  t.same(
    summarize(c.request(Method.Connect, peerAddress(PEER, 80)), ALICE),
    failure(Method.Connect, 446),
    'pending',
  );
  const id = readUint32(last(control).view, AttrType.ConnectionId);
  t.equal(id, undefined, 'the 446 carries no CONNECTION-ID');
  const data = new DataEndpoint();
  const d = h.client(ALICE, CLIENT, 50010, data);
  d.request(Method.ConnectionBind, (w) =>
    w.addUint32(AttrType.ConnectionId, connector.calls[1]!.connection.id),
  );
  t.same(
    summarize(c.request(Method.Connect, peerAddress(PEER, 80)), ALICE),
    failure(Method.Connect, 446),
    'bound',
  );
  t.equal(c.request(Method.Connect, peerAddress(PEER, 81)), null, 'another port is another peer');
  t.equal(connector.calls.length, 3);
});

t.test('Connect: tcp-relay-max-connections caps the connections of one allocation (508)', async (t) => {
  const { h, connector, c } = world({ turn: { tcpRelayMaxConnections: 2 } });
  c.request(Method.Connect, peerAddress(PEER, 1));
  c.request(Method.Connect, peerAddress(PEER, 2));
  t.same(summarize(c.request(Method.Connect, peerAddress(PEER, 3)), ALICE), failure(Method.Connect, 508));
  connector.calls[0]!.done(undefined);
  t.equal(c.request(Method.Connect, peerAddress(PEER, 3)), null, 'room again after a failure');
  t.equal(h.service.tcp.countOf(c.allocation()!), 2);
});

t.test('ConnectionBind: pipes the data connection; the errors are 400 and 441', async (t) => {
  const { h, connector, control, c } = world();
  c.request(Method.Connect, peerAddress(PEER, 80));
  const peer = new FakePeer();
  connector.calls[0]!.done(peer);
  const id = readUint32(last(control).view, AttrType.ConnectionId)!;
  const bind = (w: Parameters<Build>[0]) => w.addUint32(AttrType.ConnectionId, id);

  // On the control connection (it holds the allocation): 400.
  t.same(summarize(c.request(Method.ConnectionBind, bind), ALICE), failure(Method.ConnectionBind, 400));
  // Over UDP: 400.
  const udp = h.client(ALICE, CLIENT, 50020);
  t.same(summarize(udp.request(Method.ConnectionBind, bind), ALICE), failure(Method.ConnectionBind, 400));
  // Missing, unknown CONNECTION-ID: 400.
  const data = new DataEndpoint();
  const d = h.client(ALICE, CLIENT, 50021, data);
  t.same(summarize(d.request(Method.ConnectionBind), ALICE), failure(Method.ConnectionBind, 400), 'missing');
  t.same(
    summarize(
      d.request(Method.ConnectionBind, (w) => w.addUint32(AttrType.ConnectionId, id ^ 1)),
      ALICE,
    ),
    failure(Method.ConnectionBind, 400),
    'unknown',
  );
  // Another user: 441.
  const m = h.client(MALLORY, CLIENT, 50022, new DataEndpoint());
  t.same(summarize(m.request(Method.ConnectionBind, bind), MALLORY), failure(Method.ConnectionBind, 441));
  // A connection that cannot be piped (closing): the peer connection goes.
  const closing = new DataEndpoint();
  closing.refuse = true;
  t.equal(h.client(ALICE, CLIENT, 50023, closing).request(Method.ConnectionBind, bind), null);
  t.equal(peer.closes, 1);
  t.equal(h.service.tcp.get(id), undefined);

  // A fresh one binds: the signed success is handed to the endpoint, which becomes the pipe.
  c.request(Method.Connect, peerAddress(PEER, 80));
  const peer2 = new FakePeer();
  connector.calls[1]!.done(peer2);
  const id2 = readUint32(last(control).view, AttrType.ConnectionId)!;
  t.equal(
    d.request(Method.ConnectionBind, (w) => w.addUint32(AttrType.ConnectionId, id2)),
    null,
  );
  const b = data.bound[0]!;
  t.same(summarize(decode(b.response), ALICE), success(Method.ConnectionBind));
  t.equal(b.peer, peer2);
  t.equal(b.connection.state, TcpState.Bound);
  t.equal(h.stats.tcpConnectionsBound, 1);
  const again = h.client(ALICE, CLIENT, 50024, new DataEndpoint());
  t.same(
    summarize(
      again.request(Method.ConnectionBind, (w) => w.addUint32(AttrType.ConnectionId, id2)),
      ALICE,
    ),
    failure(Method.ConnectionBind, 400),
    'already bound',
  );
  // The shell reports the pipe closed: the peer is free again.
  h.service.tcpConnectionClosed(b.connection);
  t.equal(peer2.closes, 1);
  t.equal(h.service.tcp.size, 0);
});

t.test('a peer data connection not bound within 30 s is closed (configurable for tests)', async (t) => {
  for (const timeout of [undefined, 2]) {
    const { h, connector, control, c } = world(
      timeout === undefined ? {} : { turn: { tcpConnectionBindTimeoutSec: timeout } },
    );
    c.request(Method.Connect, peerAddress(PEER, 80));
    const peer = new FakePeer();
    connector.calls[0]!.done(peer);
    const id = readUint32(last(control).view, AttrType.ConnectionId)!;
    const limit = timeout ?? 30;
    h.advance(limit - 1);
    t.equal(peer.closes, 0, `still open after ${limit - 1} s`);
    h.advance(1);
    t.equal(peer.closes, 1, `closed at ${limit} s`);
    t.equal(h.stats.tcpBindTimeouts, 1);
    const d = h.client(ALICE, CLIENT, 50030, new DataEndpoint());
    t.same(
      summarize(
        d.request(Method.ConnectionBind, (w) => w.addUint32(AttrType.ConnectionId, id)),
        ALICE,
      ),
      failure(Method.ConnectionBind, 400),
      'an expired CONNECTION-ID',
    );
  }
});

t.test(
  'incoming peer connections: permission and policy required, capped, announced with ConnectionAttempt',
  async (t) => {
    const { h, control, c } = world({ turn: { tcpRelayMaxConnections: 2 } });
    const a = c.allocation()!;
    const stranger = new FakePeer();
    t.equal(h.service.peerConnected(a, PEER, 40000, stranger), undefined, 'no permission');
    t.equal(h.stats.tcpPeerConnectionsRefused, 1);
    c.createPermission([PEER]);
    const sentBefore = control.sent.length;
    const c1 = h.service.peerConnected(a, PEER, 40001, new FakePeer());
    t.ok(c1);
    t.equal(control.sent.length, sentBefore + 1);
    const ind = last(control);
    t.equal(ind.view.cls, Class.Indication);
    t.equal(ind.view.method, Method.ConnectionAttempt);
    t.same(readAddress(ind.view, AttrType.XorPeerAddress), { family: 1, address: PEER, port: 40001 });
    t.equal(readUint32(ind.view, AttrType.ConnectionId), c1!.id);
    t.equal(c1!.state, TcpState.Pending);
    t.ok(h.service.peerConnected(a, PEER, 40002, new FakePeer()));
    t.equal(h.service.peerConnected(a, PEER, 40003, new FakePeer()), undefined, 'over the cap');
    // A policy change (reload) that denies the peer applies to new connections at once.
    h.service.reconfigure(h.options, h.auth, new PeerPolicy({ ...DEFAULT_POLICY_OPTIONS, allowed: [] }));
    h.service.tcpConnectionClosed(c1!);
    t.equal(h.service.peerConnected(a, PEER, 40004, new FakePeer()), undefined, 'denied by the policy');
    // The announced connection is bound like a Connect's.
    const data = new DataEndpoint();
    const d = h.client(ALICE, CLIENT, 50040, data);
    const pendingId = [...h.service.tcp.of(a)][0]!.id;
    d.request(Method.ConnectionBind, (w) => w.addUint32(AttrType.ConnectionId, pendingId));
    t.equal(data.bound.length, 1);
    // Permissions expire (300 s): peers without one are refused again.
    t.equal(h.service.peerConnected(a, '198.51.100.99', 1, new FakePeer()), undefined);
    t.equal(h.stats.tcpPeerConnectionsRefused, 4);
    // Not a TCP allocation, or a deleted one: refused.
    const u = h.client(ALICE, CLIENT, 50041);
    u.allocate();
    u.createPermission([PEER]);
    t.equal(h.service.peerConnected(u.allocation()!, PEER, 1, new FakePeer()), undefined);
  },
);

t.test(
  'our own relay (1:1 NAT) connecting from its local address is known by its advertised one',
  async (t) => {
    const { h, control, c } = world();
    c.createPermission([RELAY_V4.advertised]);
    t.ok(h.service.peerConnected(c.allocation()!, RELAY_V4.local, 40000, new FakePeer()));
    t.same(readAddress(last(control).view, AttrType.XorPeerAddress)?.address, RELAY_V4.advertised);
  },
);

t.test(
  'every connection closes when the allocation goes; a Connect finishing afterwards is closed unanswered',
  async (t) => {
    for (const how of ['refresh', 'expiry', 'connection', 'admin'] as const) {
      const { h, connector, control, c } = world();
      const a = c.allocation()!;
      c.request(Method.Connect, peerAddress(PEER, 1));
      c.request(Method.Connect, peerAddress(PEER, 2));
      c.request(Method.Connect, peerAddress(PEER, 3));
      const pending = new FakePeer();
      connector.calls[0]!.done(pending);
      const bound = new FakePeer();
      connector.calls[1]!.done(bound);
      const id = readUint32(last(control).view, AttrType.ConnectionId)!;
      h.client(ALICE, CLIENT, 50050, new DataEndpoint()).request(Method.ConnectionBind, (w) =>
        w.addUint32(AttrType.ConnectionId, id),
      );
      c.createPermission([PEER]);
      const inbound = new FakePeer();
      h.service.peerConnected(a, PEER, 40000, inbound);
      if (how === 'refresh') c.refresh(0);
      else if (how === 'expiry') h.advance(601);
      else if (how === 'connection') h.service.endpointClosed(control);
      else h.service.deleteAllocation(a, 'admin');
      t.ok(a.deleted, how);
      t.same(
        [pending.closes, bound.closes, inbound.closes],
        [1, 1, 1],
        `${how}: every peer connection closed`,
      );
      t.ok(connector.calls[2]!.cancelled, `${how}: the Connect in progress is abandoned`);
      t.equal(h.service.tcp.size, 0);
      const late = new FakePeer();
      const sent = control.sent.length;
      connector.calls[2]!.done(late);
      t.equal(late.closes, 1, `${how}: a connection opened after the allocation went is closed`);
      t.equal(control.sent.length, sent, 'and not answered');
    }
  },
);

t.test('Connect on a TCP connection without allocation: 437', async (t) => {
  const h = new Harness({ tcpConnector: new FakeConnector(), turn: { tcpRelay: true } });
  const d = h.client(ALICE, CLIENT, 1, new DataEndpoint());
  t.same(summarize(d.request(Method.Connect, peerAddress(PEER, 1)), ALICE), failure(Method.Connect, 437));
});

t.test('bytes the shell pipes are counted in the allocation counters and the server totals', async (t) => {
  const { h, c } = world();
  const a = c.allocation()!;
  h.plane.countStreamRelay(a, true, 100);
  h.plane.countStreamRelay(a, false, 40);
  h.plane.countStreamRelay(a, false, 2);
  const k = h.plane.counters(a);
  t.same([k.packetsToPeer, k.bytesToPeer, k.packetsToClient, k.bytesToClient], [1, 100, 2, 42]);
  t.same([h.stats.relayedToPeerBytes, h.stats.relayedToClientBytes], [100, 42]);
  // Bytes still draining after the allocation went reach only the totals.
  c.refresh(0);
  const gone = h.client(ALICE, CLIENT, 9, new DataEndpoint()).allocation();
  t.equal(gone, undefined);
  h.plane.countStreamRelay({ dataPlaneState: undefined } as unknown as typeof a, true, 1);
  h.plane.countStreamRelay({ dataPlaneState: undefined } as unknown as typeof a, false, 1);
  t.same([h.stats.relayedToPeerBytes, h.stats.relayedToClientBytes], [101, 43]);
});

t.test(
  "ConnectionBind with the control connection's nonce: accepted from the same IP for that allocation's connection only",
  async (t) => {
    const { h, connector, control, c } = world();
    c.request(Method.Connect, peerAddress(PEER, 80));
    connector.calls[0]!.done(new FakePeer());
    const id = readUint32(last(control).view, AttrType.ConnectionId)!;
    const bind = (w: Parameters<Build>[0]) => w.addUint32(AttrType.ConnectionId, id);
    // Another IP holding the nonce: 438 (nonces are bound to the client's address).
    const elsewhere = h.client(ALICE, '192.0.2.61', 50060, new DataEndpoint());
    elsewhere.nonce = c.nonce;
    t.same(
      summarize(elsewhere.request(Method.ConnectionBind, bind, { retryStale: false })),
      failure(Method.ConnectionBind, 438, false),
    );
    // The same IP, but no such connection: 438 as well.
    const data = new DataEndpoint();
    const d = h.client(ALICE, CLIENT, 50061, data);
    d.nonce = c.nonce;
    t.same(
      summarize(
        d.request(Method.ConnectionBind, (w) => w.addUint32(AttrType.ConnectionId, id ^ 1), {
          retryStale: false,
        }),
      ),
      failure(Method.ConnectionBind, 438, false),
    );
    t.same(
      summarize(
        d.request(Method.ConnectionBind, (w) => w.addFlag(AttrType.DontFragment), { retryStale: false }),
      ),
      failure(Method.ConnectionBind, 438, false),
      'no CONNECTION-ID',
    );
    // The same IP, a new port, the control connection's nonce, the connection it announced: bound.
    t.equal(d.request(Method.ConnectionBind, bind, { retryStale: false }), null);
    t.equal(data.bound.length, 1);
    t.same(summarize(decode(data.bound[0]!.response), ALICE), success(Method.ConnectionBind));
  },
);

t.test('a TCP allocation takes no ChannelBind (400) and relays no Send indication', async (t) => {
  const { h, c } = world();
  c.createPermission([PEER]);
  t.same(summarize(c.channelBind(0x4000, PEER, 80), ALICE), failure(Method.ChannelBind, 400));
  const dropped = h.stats.droppedUnsupported;
  c.send(PEER, 80, Buffer.from('datagram'));
  t.equal(h.stats.droppedUnsupported, dropped + 1);
  t.same(
    h.allocator.relays.flatMap((r) => r.sent),
    [],
    'nothing sent from the relay',
  );
  t.equal(h.plane.counters(c.allocation()!).packetsToPeer, 0);
});

t.test(
  'RFC 8016 with RFC 6062: a TCP allocation moved to a new control connection keeps its peer connections',
  async (t) => {
    const connector = new FakeConnector();
    const h = new Harness({ tcpConnector: connector, turn: { tcpRelay: true, mobility: true } });
    const oldControl = new DataEndpoint();
    const c = h.client(ALICE, CLIENT, 50070, oldControl);
    const reply = c.allocate(tcpTransport((w) => w.addBytes(AttrType.MobilityTicket, Buffer.alloc(0))));
    const ticket = reply?.view.has(AttrType.MobilityTicket)
      ? Buffer.from(reply.view.value(reply.view.find(AttrType.MobilityTicket)))
      : undefined;
    if (ticket === undefined) throw new Error('no ticket');
    const a = c.allocation()!;
    c.request(Method.Connect, peerAddress(PEER, 80));
    const peer = new FakePeer();
    connector.calls[0]!.done(peer);
    // The client's control connection breaks; a new one from another address takes the allocation.
    const newControl = new DataEndpoint();
    const moved = h.client(ALICE, '203.0.113.80', 50071, newControl);
    t.same(
      summarize(
        moved.refresh(600, (w) => w.addBytes(AttrType.MobilityTicket, ticket)),
        ALICE,
      ),
      success(Method.Refresh),
    );
    t.equal(moved.allocation(), a, 'moved');
    t.equal(peer.closes, 0, 'the pending peer connection survives the move');
    moved.createPermission([PEER]);
    t.ok(h.service.peerConnected(a, PEER, 40000, new FakePeer()));
    t.equal(
      last(newControl).view.method,
      Method.ConnectionAttempt,
      'ConnectionAttempt on the new control connection',
    );
    const id = [...h.service.tcp.of(a)][0]!.id;
    // The new control connection is a control connection: 400; the connection stays pending.
    t.same(
      summarize(
        moved.request(Method.ConnectionBind, (w) => w.addUint32(AttrType.ConnectionId, id)),
        ALICE,
      ),
      failure(Method.ConnectionBind, 400),
    );
    // The old connection holds no allocation any more: it may serve as a data connection.
    t.equal(
      c.request(Method.ConnectionBind, (w) => w.addUint32(AttrType.ConnectionId, id)),
      null,
    );
    t.equal(oldControl.bound.length, 1);
    t.equal(h.service.tcp.get(id)?.state, TcpState.Bound);
  },
);
