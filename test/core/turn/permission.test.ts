/**
 * CreatePermission (RFC 8656 §9, §10.2): all peers or none, the peer policy (403), the address
 * family (443), the permission cap (508) and expiry after the permission lifetime.
 */
import t from 'tap';
import { AttrType, Family, Method } from '../../../src/core/constants.js';
import {
  ALICE,
  failure,
  Harness,
  RELAY_V6,
  requestedTransport,
  success,
  summarize,
} from '../../fixtures/helpers/turn-core-harness.js';

const CLIENT = '192.0.2.30';
const PEERS = ['198.51.100.7', '198.51.100.8', '2001:db8::7'];

t.test('several XOR-PEER-ADDRESS in one request are all installed', async (t) => {
  const h = new Harness({ allocator: { v6: RELAY_V6 } });
  const c = h.client(ALICE, CLIENT, 40000);
  c.allocate(requestedTransport((w) => w.addLeadingByte(AttrType.AdditionalAddressFamily, Family.IPv6)));
  const a = c.allocation()!;
  t.same(summarize(c.createPermission(PEERS), ALICE), success(Method.CreatePermission));
  t.same([...h.fwd(a).permissions.keys()].sort(), [...PEERS].sort());
  for (const exp of h.fwd(a).permissions.values()) t.equal(exp, h.nowSec + 300, 'permission lifetime 300 s');
  for (const peer of PEERS) {
    const before = c.received().length;
    h.fromPeer(c.relay(peer.includes(':') ? 6 : 4), Buffer.from('hi'), peer, 7000);
    t.equal(c.received().length, before + 1, `a packet from ${peer} is relayed`);
  }
});

t.test('one denied peer fails the whole request with 403 and installs nothing', async (t) => {
  const h = new Harness({ allocator: { v6: RELAY_V6 } });
  const c = h.client(ALICE, CLIENT, 40001);
  c.allocate(requestedTransport((w) => w.addLeadingByte(AttrType.AdditionalAddressFamily, Family.IPv6)));
  const a = c.allocation()!;
  const denied = [
    '10.0.0.1',
    '169.254.169.254',
    '127.0.0.1',
    '::ffff:127.0.0.1',
    '::1',
    'fe80::1',
    '0.0.0.0',
  ];
  for (const bad of denied) {
    const reply = c.createPermission(['198.51.100.7', bad, '198.51.100.8']);
    t.same(summarize(reply, ALICE), failure(Method.CreatePermission, 403), bad);
  }
  t.equal(h.fwd(a).permissions.size, 0, 'nothing installed');
  t.equal(h.stats.peerRefusals, denied.length);
  h.fromPeer(c.relay(), Buffer.from('x'), '198.51.100.7', 7000);
  t.equal(h.stats.droppedNoPermission, 1, 'the allowed peer of the refused request has no permission');
});

t.test('400 without XOR-PEER-ADDRESS or with a malformed one', async (t) => {
  const h = new Harness();
  const c = h.client(ALICE, CLIENT, 40002);
  c.allocate();
  t.same(summarize(c.createPermission([]), ALICE), failure(Method.CreatePermission, 400), 'none');
  const malformed = c.request(Method.CreatePermission, (w) => {
    w.addAddress(AttrType.XorPeerAddress, '198.51.100.7', 1, true);
    w.addBytes(AttrType.XorPeerAddress, Buffer.from([0, 1, 0, 0, 1, 2, 3]));
  });
  t.same(summarize(malformed, ALICE), failure(Method.CreatePermission, 400), 'a 7-byte IPv4 address');
  t.equal(h.fwd(c.allocation()).permissions.size, 0);
});

t.test('443 for an IPv6 peer on an IPv4-only allocation (and an IPv4 peer on an IPv6 one)', async (t) => {
  const h = new Harness({ allocator: { v6: RELAY_V6 } });
  const c = h.client(ALICE, CLIENT, 40003);
  c.allocate();
  for (const peer of ['2001:db8::7', '::ffff:198.51.100.7']) {
    t.same(
      summarize(c.createPermission(['198.51.100.7', peer]), ALICE),
      failure(Method.CreatePermission, 443),
      peer,
    );
  }
  t.equal(h.fwd(c.allocation()).permissions.size, 0);
  const v6 = h.client(ALICE, CLIENT, 40004);
  v6.allocate(requestedTransport((w) => w.addLeadingByte(AttrType.RequestedAddressFamily, Family.IPv6)));
  t.same(summarize(v6.createPermission(['198.51.100.7']), ALICE), failure(Method.CreatePermission, 443));
});

t.test('508 beyond maxPermissions; refreshing installed permissions still works', async (t) => {
  const h = new Harness({ turn: { maxPermissions: 3 } });
  const c = h.client(ALICE, CLIENT, 40005);
  c.allocate();
  const a = c.allocation()!;
  t.same(
    summarize(c.createPermission(['198.51.100.1', '198.51.100.2']), ALICE),
    success(Method.CreatePermission),
  );
  t.same(
    summarize(c.createPermission(['198.51.100.3', '198.51.100.4']), ALICE),
    failure(Method.CreatePermission, 508),
    'two more would make four',
  );
  t.equal(h.fwd(a).permissions.size, 2, 'none of the refused request installed');
  t.same(
    summarize(c.createPermission(['198.51.100.3', '198.51.100.3']), ALICE),
    success(Method.CreatePermission),
    'a duplicate counts once: three',
  );
  h.advance(10);
  t.same(
    summarize(c.createPermission(['198.51.100.1', '198.51.100.2', '198.51.100.3']), ALICE),
    success(Method.CreatePermission),
    'refreshing the three installed ones',
  );
  t.equal(h.fwd(a).permissions.get('198.51.100.1'), h.nowSec + 300, 'refreshed');
  t.same(
    summarize(c.createPermission(['198.51.100.9']), ALICE),
    failure(Method.CreatePermission, 508),
    'a fourth',
  );
  h.advance(300);
  t.same(
    summarize(c.createPermission(['198.51.100.9']), ALICE),
    success(Method.CreatePermission),
    'expired permissions do not count',
  );
});

t.test('permissions expire after the permission lifetime: later peer packets are dropped', async (t) => {
  const h = new Harness();
  const c = h.client(ALICE, CLIENT, 40006);
  c.allocate();
  // Off the sweep's 10 s pruning grid: expiry must be checked per packet, not only by pruning.
  h.advance(5);
  c.createPermission(['198.51.100.7', '198.51.100.8']);
  const relay = c.relay();
  h.advance(150);
  c.createPermission(['198.51.100.8']); // refreshed: lives until 150 + 300
  h.advance(149);
  h.fromPeer(relay, Buffer.from('a'), '198.51.100.7', 7000);
  t.equal(c.received().length, 2, '299 s: delivered (the Allocate success and this)');
  h.advance(1);
  h.fromPeer(relay, Buffer.from('b'), '198.51.100.7', 7000);
  t.equal(c.received().length, 2, '300 s: dropped');
  t.equal(h.stats.droppedNoPermission, 1);
  c.send('198.51.100.7', 7000, Buffer.from('out'));
  t.equal(relay.sent.length, 0, 'a Send indication to it is dropped too');
  t.equal(h.stats.droppedNoPermission, 2);
  h.fromPeer(relay, Buffer.from('c'), '198.51.100.8', 7000);
  t.equal(c.received().length, 3, 'the refreshed permission still holds');
  h.advance(150);
  h.fromPeer(relay, Buffer.from('d'), '198.51.100.8', 7000);
  t.equal(c.received().length, 3, 'until its own expiry');
  t.equal(h.stats.droppedNoPermission, 3);
  h.advance(10);
  t.equal(h.fwd(c.allocation()).permissions.size, 0, 'the sweep prunes expired permissions');
});

t.test(
  'a retransmitted CreatePermission is processed again (idempotent), not answered from the cache',
  async (t) => {
    const h = new Harness();
    const c = h.client(ALICE, CLIENT, 40009);
    c.allocate();
    const a = c.allocation()!;
    const request = c.build(Method.CreatePermission, (w) =>
      w.addAddress(AttrType.XorPeerAddress, PEERS[0]!, 0, true),
    );
    t.same(summarize(c.exchange(request), ALICE), success(Method.CreatePermission));
    const retransmissions = h.stats.retransmissions;
    h.advance(100);
    const again = c.exchange(request);
    t.same(summarize(again, ALICE), success(Method.CreatePermission), 'the same success');
    t.equal(h.stats.retransmissions, retransmissions, 'not served from the cache');
    t.equal(h.fwd(a).permissions.get(PEERS[0]!), h.nowSec + 300, 'and the permission refreshed from now');
  },
);
