/**
 * Allocation lifecycle (RFC 8656 §6, §5 for stream transports): expiry by the sweep, deletion when
 * a TCP/TLS connection closes, and relays closed exactly once whatever deletes them.
 */
import t from 'tap';
import { AttrType, Family, Method } from '../../../src/core/constants.js';
import { readUint32 } from '../../../src/core/stun/attrs.js';
import {
  ALICE,
  BOB,
  decode,
  FakeEndpoint,
  Harness,
  RELAY_V6,
  requestedTransport,
  success,
  summarize,
} from '../../fixtures/helpers/turn-core-harness.js';

const CLIENT = '192.0.2.60';
const PEER = '198.51.100.7';

t.test('the sweep deletes expired allocations: relay closed, event with reason expired', async (t) => {
  const h = new Harness();
  const short = h.client(ALICE, CLIENT, 40000);
  const long = h.client(BOB, CLIENT, 40001);
  short.allocate();
  long.allocate(requestedTransport((w) => w.addUint32(AttrType.Lifetime, 1200)));
  const a = short.allocation()!;
  const relay = short.relay();
  short.createPermission([PEER]);
  h.advance(599);
  t.equal(h.service.table.size, 2, '599 s: both alive');
  h.advance(1);
  t.equal(h.service.table.size, 1, '600 s: the first has expired');
  t.equal(short.allocation(), undefined);
  t.ok(long.allocation());
  t.equal(a.deleted, true);
  t.equal(relay.closeCount, 1);
  t.same(
    h.events.filter((e) => e.kind === 'deleted').map((e) => [e.allocation, e.reason]),
    [[a, 'expired']],
  );
  t.equal(h.stats.allocationsDeleted.get('expired'), 1);
  // Traffic for the deleted allocation goes nowhere.
  short.send(PEER, 7000, Buffer.from('late'));
  short.channelData(0x4000, Buffer.from('late'));
  t.equal(h.stats.droppedNoAllocation, 2);
  h.fromPeer(relay, Buffer.from('late'), PEER, 7000);
  t.equal(short.received().length, 1, 'a packet still in flight on the old relay is ignored');
  t.equal(relay.sent.length, 0);
  t.same(summarize(short.refresh(), ALICE)?.code, 437, 'a late Refresh: 437');
});

t.test('endpointClosed deletes the allocations of that connection only', async (t) => {
  const h = new Harness();
  const tcp1 = new FakeEndpoint('tcp');
  const tcp2 = new FakeEndpoint('tls');
  const c1 = h.client(ALICE, CLIENT, 40000, tcp1);
  const c2 = h.client(BOB, CLIENT, 40001, tcp2);
  const u = h.client(ALICE, CLIENT, 40000, h.udp);
  for (const c of [c1, c2, u]) t.same(summarize(c.allocate(), c.creds), success(Method.Allocate));
  const a1 = c1.allocation()!;
  const r1 = c1.relay();
  h.service.endpointClosed(tcp1);
  t.equal(h.service.table.size, 2);
  t.equal(c1.allocation(), undefined);
  t.ok(c2.allocation(), 'the other connection keeps its allocation');
  t.ok(u.allocation(), 'the UDP client on the same address and port too');
  t.equal(r1.closeCount, 1);
  t.same(
    h.events.filter((e) => e.kind === 'deleted').map((e) => [e.allocation, e.reason]),
    [[a1, 'connection-closed']],
  );
  h.service.endpointClosed(tcp1);
  t.equal(r1.closeCount, 1, 'closing again changes nothing');
  t.equal(h.stats.allocationsDeleted.get('connection-closed'), 1);
});

t.test('relays are closed exactly once, whatever deletes the allocation and how often', async (t) => {
  const h = new Harness({ allocator: { v6: RELAY_V6 } });
  const tcp = new FakeEndpoint('tcp');
  const c = h.client(ALICE, CLIENT, 40000, tcp);
  c.allocate(requestedTransport((w) => w.addLeadingByte(AttrType.AdditionalAddressFamily, Family.IPv6)));
  const a = c.allocation()!;
  const relays = [c.relay(4), c.relay(6)];
  c.refresh(0);
  h.service.endpointClosed(tcp);
  h.advance(700);
  h.service.deleteAllocation(a, 'admin');
  h.service.closeAll('shutdown');
  t.same(
    relays.map((r) => r.closeCount),
    [1, 1],
  );
  t.same(
    h.events.filter((e) => e.kind === 'deleted').map((e) => e.reason),
    ['refreshed-to-zero'],
    'one deletion event',
  );
  t.equal(h.allocator.open().length, 0, 'no relay left open');
});

t.test('closeAll deletes everything with the given reason', async (t) => {
  const h = new Harness();
  for (let i = 0; i < 3; i++) h.client(ALICE, CLIENT, 40000 + i).allocate();
  h.service.closeAll('shutdown');
  t.equal(h.service.table.size, 0);
  t.equal(h.allocator.open().length, 0);
  t.equal(h.stats.allocationsDeleted.get('shutdown'), 3);
});

t.test('a connection that closes while its relay is being bound leaks nothing', async (t) => {
  const h = new Harness();
  h.allocator.mode = 'async';
  const tcp = new FakeEndpoint('tcp');
  const c = h.client(ALICE, CLIENT, 40000, tcp);
  t.equal(c.allocate(), null, 'pending');
  t.equal(h.service.table.size, 1);
  h.service.endpointClosed(tcp);
  t.equal(h.service.table.size, 0, 'the pending allocation is gone');
  h.allocator.complete();
  t.equal(h.allocator.relays.length, 1, 'the bind completed');
  t.equal(h.allocator.open().length, 0, 'and its relay was closed at once');
  t.equal(h.service.table.size, 0);
  t.equal(h.stats.allocationsCreated, 0);
  // created_total − deleted_total is the number of live allocations only if a deletion is counted
  // (and announced) for allocations that were created.
  t.same(
    h.events.map((e) => e.kind),
    [],
    'no allocationDeleted for an allocation never announced as created',
  );
  t.equal(h.stats.allocationsDeleted.size, 0, 'no deletion counted');
});

t.test(
  'a slow bind: the sweep leaves the pending allocation alone; LIFETIME counts from the request',
  async (t) => {
    const h = new Harness();
    h.allocator.mode = 'async';
    const c = h.client(ALICE, CLIENT, 40000);
    c.allocate();
    h.advance(30);
    t.equal(c.allocation()?.pending, true, 'still waiting for the relay');
    h.allocator.complete();
    t.equal(c.allocation()?.pending, false);
    const reply = decode(c.received().at(-1)!.buf);
    t.same(summarize(reply, ALICE), success(Method.Allocate));
    t.equal(readUint32(reply.view, AttrType.Lifetime), 570);
  },
);
