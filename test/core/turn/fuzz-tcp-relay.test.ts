/**
 * Property test of the RFC 6062 core: 10 000 random steps over a few TCP allocations — Connects to
 * random peers (allowed and denied), the shell's connector completing them in any order (open,
 * failed, after the allocation went), ConnectionBinds with live, stale and random CONNECTION-IDs
 * from new connections, control connections and UDP, incoming peer connections with and without
 * permissions, pipes closing, Refresh 0, control connections closing, time passing. After every step:
 *  - nothing threw;
 *  - no leak: every peer connection handed to the core is closed exactly when the core forgot it
 *    (and never more than once), and every Connect in progress the core forgot was cancelled;
 *  - connections belong to live TCP allocations only, within tcp-relay-max-connections, one per peer;
 *  - every message sent to a client is well-formed STUN.
 */
import t from 'tap';
import { AttrType, Method, Transport } from '../../../src/core/constants.js';
import { decodeStun } from '../../../src/core/stun/decode.js';
import type { RelayHandle } from '../../../src/core/transport.js';
import type {
  DataConnectionEndpoint,
  PeerConnection,
  PendingConnect,
  TcpConnection,
  TcpConnector,
} from '../../../src/core/turn/tcp-relay.js';
import { Rng } from '../../fixtures/helpers/random.js';
import {
  ALICE,
  FakeEndpoint,
  Harness,
  MALLORY,
  type TurnClient,
} from '../../fixtures/helpers/turn-core-harness.js';

const SEED = 0x6062_2026;
const STEPS = 10_000;
const CAP = 4;
const PEERS = ['198.51.100.7', '198.51.100.8', '10.0.0.1', '127.0.0.1', '0.0.0.0', '2001:db8::7'];

class Peer implements PeerConnection {
  closes = 0;
  close(): void {
    this.closes++;
  }
}

interface Call {
  readonly connection: TcpConnection;
  readonly done: (peer: PeerConnection | undefined) => void;
  cancelled: boolean;
  finished: boolean;
}

class Connector implements TcpConnector {
  readonly open: Call[] = [];
  connect(
    connection: TcpConnection,
    _relay: RelayHandle,
    _address: string,
    _port: number,
    done: (peer: PeerConnection | undefined) => void,
  ): PendingConnect {
    const call: Call = { connection, done, cancelled: false, finished: false };
    this.open.push(call);
    return { cancel: () => (call.cancelled = true) };
  }
}

class DataEndpoint extends FakeEndpoint implements DataConnectionEndpoint {
  piped = 0;
  constructor() {
    super('tcp');
  }
  becomeDataConnection(): boolean {
    this.piped++;
    return this.piped === 1;
  }
}

t.test(`${STEPS} random RFC 6062 steps keep the invariants`, async (t) => {
  const rng = new Rng(SEED);
  const pick = <T>(xs: readonly T[]): T => xs[rng.int(xs.length)]!;
  const connector = new Connector();
  const h = new Harness({ tcpConnector: connector, turn: { tcpRelay: true, tcpRelayMaxConnections: CAP } });
  const endpoints: DataEndpoint[] = [];
  const controls: TurnClient[] = [];
  /** Every peer connection handed to the core, with the connection it became (if any). */
  const handed: { peer: Peer; connection: () => TcpConnection | undefined }[] = [];
  const ids: number[] = [];
  let port = 30000;
  const newClient = (creds = ALICE): TurnClient => {
    const e = new DataEndpoint();
    endpoints.push(e);
    return h.client(creds, '192.0.2.70', port++, e);
  };
  const connectionId = (): number => {
    const pending: number[] = [];
    for (const a of h.service.table.all())
      for (const c of h.service.tcp.of(a)) if (c.peer !== undefined) pending.push(c.id);
    const r = rng.int(4);
    if (r < 2 && pending.length > 0) return pick(pending);
    if (r < 3 && ids.length > 0) return pick(ids);
    return rng.int(0x100000000);
  };

  for (let step = 0; step < STEPS; step++) {
    const live = controls.filter((c) => c.allocation() !== undefined);
    switch (rng.int(11)) {
      case 0: {
        const c = newClient(rng.int(5) === 0 ? MALLORY : ALICE);
        c.allocate((w) =>
          w.addLeadingByte(AttrType.RequestedTransport, rng.int(6) === 0 ? Transport.UDP : Transport.TCP),
        );
        controls.push(c);
        break;
      }
      case 1:
      case 2: {
        if (live.length === 0) break;
        const c = pick(live);
        c.request(Method.Connect, (w) => {
          if (rng.int(10) > 0) w.addAddress(AttrType.XorPeerAddress, pick(PEERS), 1 + rng.int(4), true);
        });
        break;
      }
      case 3: {
        // The connector reports, in any order, open or failed.
        const pending = connector.open.filter((c) => !c.finished && !c.cancelled);
        if (pending.length === 0) break;
        const call = pick(pending);
        call.finished = true;
        if (rng.int(3) === 0) call.done(undefined);
        else {
          const peer = new Peer();
          handed.push({ peer, connection: () => call.connection });
          call.done(peer);
          ids.push(call.connection.id);
        }
        break;
      }
      case 4: {
        // ConnectionBind from a new connection, a control connection, or UDP.
        const r = rng.int(4);
        const c =
          r === 0 && live.length > 0
            ? pick(live)
            : r === 1
              ? h.client(ALICE, '192.0.2.70', port++)
              : newClient(rng.int(6) === 0 ? MALLORY : ALICE);
        c.request(Method.ConnectionBind, (w) => {
          if (rng.int(10) > 0) w.addUint32(AttrType.ConnectionId, connectionId());
        });
        break;
      }
      case 5: {
        if (live.length === 0) break;
        const c = pick(live);
        if (rng.int(2) === 0) c.createPermission([pick(PEERS.filter((p) => !p.includes(':')))]);
        const peer = new Peer();
        const conn = h.service.peerConnected(c.allocation()!, pick(PEERS), 40000 + rng.int(100), peer);
        if (conn === undefined)
          peer.close(); // the shell closes a refused connection itself
        else ids.push(conn.id);
        handed.push({ peer, connection: () => conn });
        break;
      }
      case 6: {
        // The shell reports a connection (peer or pipe) closed.
        const id = ids.length > 0 ? pick(ids) : 0;
        const conn = h.service.tcp.get(id);
        if (conn !== undefined) h.service.tcpConnectionClosed(conn);
        break;
      }
      case 7:
        if (live.length > 0) pick(live).refresh(0);
        break;
      case 8:
        if (live.length > 0) h.service.endpointClosed(pick(live).endpoint);
        break;
      case 9:
        h.advance(1 + rng.int(20));
        break;
      default:
        if (live.length > 0)
          pick(live).request(Method.Connect, (w) =>
            w.addAddress(AttrType.XorPeerAddress, '198.51.100.7', 1, true),
          );
    }

    // Invariants.
    for (const { peer, connection } of handed) {
      const c = connection();
      const gone = c === undefined || c.closed;
      if ((gone && peer.closes !== 1) || (!gone && peer.closes !== 0)) {
        t.fail(
          `step ${step}: a peer connection was ${peer.closes} times closed, its connection ${gone ? 'gone' : 'live'}`,
        );
        return;
      }
    }
    for (const call of connector.open) {
      if (call.connection.closed && !call.finished && !call.cancelled) {
        t.fail(`step ${step}: a forgotten Connect was not cancelled`);
        return;
      }
    }
    for (const a of h.service.table.all()) {
      const conns = [...h.service.tcp.of(a)];
      const keys = new Set(conns.map((c) => `${c.peerAddress}|${c.peerPort}`));
      if (
        conns.length > CAP ||
        keys.size !== conns.length ||
        (conns.length > 0 && a.relayTransport !== 'tcp')
      ) {
        t.fail(`step ${step}: allocation ${a.id} holds ${conns.length} connections (${keys.size} peers)`);
        return;
      }
    }
    let counted = 0;
    for (const a of h.service.table.all()) counted += h.service.tcp.countOf(a);
    if (counted !== h.service.tcp.size) {
      t.fail(`step ${step}: ${h.service.tcp.size} connections, ${counted} in live allocations`);
      return;
    }
  }
  for (const e of endpoints)
    for (const m of e.sent) if (!decodeStun(m.buf).ok) t.fail('a message to a client does not decode');
  t.pass(
    `${STEPS} steps: ${handed.length} peer connections, ${connector.open.length} Connects, invariants held`,
  );
  t.comment(
    `bound ${h.stats.tcpConnectionsBound}, bind timeouts ${h.stats.tcpBindTimeouts}, connect failures ${h.stats.tcpConnectFailures}, refused ${h.stats.tcpPeerConnectionsRefused}`,
  );
  t.ok(
    h.stats.tcpConnectionsBound > 0 && h.stats.tcpBindTimeouts > 0 && h.stats.tcpConnectFailures > 0,
    'every path was reached',
  );
});
