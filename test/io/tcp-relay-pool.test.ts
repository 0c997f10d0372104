/**
 * RFC 6062 relays in the relay pool, on real loopback sockets: a TCP allocation's relay is a TCP
 * listener on a relay port that hands accepted connections to the TCP sink (paused), sends no
 * datagrams, skips ports another process holds, answers 508 when none is left or no sink is wired,
 * and frees its port (stops listening) on close.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import t from 'tap';
import { ManualClock } from '../../src/core/clock.js';
import { RelayAddressBook } from '../../src/core/transport.js';
import { Allocation, type ClientEndpoint } from '../../src/core/turn/allocation.js';
import type { RelayRequest, RelayResult } from '../../src/core/turn/service.js';
import { type RelayAddress, RelayPool } from '../../src/io/relay-pool.js';
import type { TcpPeerSink } from '../../src/io/tcp-relay.js';
import { createLogger } from '../../src/log.js';
import { freePort } from '../fixtures/helpers/daemon.js';

const endpoint: ClientEndpoint = { transport: 'tcp', send() {}, sendv() {} };
const log = createLogger('silent');
const ADDRESSES: readonly RelayAddress[] = [{ family: 4, local: '127.0.0.1', advertised: '127.0.0.1' }];
const TCP: RelayRequest = {
  family: 4,
  evenPort: false,
  reserveNext: false,
  reservationToken: undefined,
  transport: 'tcp',
};

function owner(id = 1): Allocation {
  return new Allocation(id, endpoint, '127.0.0.1', 40000 + id, 'alice', 'alice', 0, 600, 'tid');
}

function pool(minPort: number, maxPort: number, sink: TcpPeerSink | undefined): RelayPool {
  return new RelayPool({
    addresses: ADDRESSES,
    book: new RelayAddressBook(ADDRESSES),
    minPort,
    maxPort,
    sockBufSize: 0,
    sink: { fromPeer: () => {} },
    tcpSink: sink,
    clock: new ManualClock(Date.now()),
    log,
  });
}

function allocate(p: RelayPool, a = owner()): Promise<RelayResult> {
  return new Promise((resolve) => p.allocate(a, [TCP], (r) => resolve(r[0]!)));
}

function listen(port: number): Promise<Server> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(port, '127.0.0.1', () => resolve(s));
  });
}

t.test('a TCP relay listens on a relay port and hands paused connections to the sink', async (t) => {
  const port = await freePort();
  const accepted: { owner: number; socket: Socket }[] = [];
  const p = pool(port, port, { accepted: (a, socket) => accepted.push({ owner: a.id, socket }) });
  const r = await allocate(p, owner(7));
  if (!r.ok) throw new Error('no relay');
  t.equal(r.relay.port, port);
  t.equal(r.relay.localAddress, '127.0.0.1');
  t.equal(p.active, 1);
  t.equal(p.portUsage()[0]?.free, 0, 'the port is taken');
  r.relay.send(Buffer.from('x'), 9, '127.0.0.1'); // no datagrams: a no-op
  const peer = connect({ host: '127.0.0.1', port });
  peer.on('error', () => {});
  await new Promise<void>((resolve) => peer.once('connect', () => resolve()));
  peer.write('waiting');
  for (let i = 0; i < 200 && accepted.length === 0; i++) await new Promise((res) => setTimeout(res, 5));
  t.equal(accepted[0]?.owner, 7);
  t.ok(accepted[0]?.socket.isPaused(), 'paused: the peer waits for ConnectionBind');
  accepted[0]?.socket.destroy();
  peer.destroy();
  r.relay.close();
  r.relay.close();
  t.equal(p.active, 0);
  t.equal(p.portUsage()[0]?.free, 1, 'the port is free again');
  // Closed: the port can be bound by someone else.
  const again = await listen(port);
  await new Promise<void>((resolve) => again.close(() => resolve()));
});

t.test(
  'a port another process holds is not used (marked busy); none left, or no TCP sink: 508',
  async (t) => {
    const taken = await freePort();
    const holder = await listen(taken);
    t.teardown(() => new Promise<void>((resolve) => holder.close(() => resolve())));
    const sink: TcpPeerSink = { accepted: (_a, s) => s.destroy() };
    const full = pool(taken, taken, sink);
    t.same(await allocate(full), { ok: false, code: 508 }, 'the only port is held elsewhere');
    t.equal(full.portUsage()[0]?.free, 0, 'marked busy until the next retry sweep');
    const none = pool(taken, taken, undefined);
    t.same(await allocate(none), { ok: false, code: 508 }, 'no TCP sink wired');
  },
);
