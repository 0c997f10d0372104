/**
 * ChannelBind (RFC 8656 §12, §12.2): the channel number range, one peer per channel and one channel
 * per peer, refresh by rebinding, expiry, the permission it installs, and peer refusals.
 */
import t from 'tap';
import { AttrType, Method, RFC5766_CHANNEL_MAX } from '../../../src/core/constants.js';
import {
  ALICE,
  type Build,
  failure,
  Harness,
  MAX_PORT,
  MIN_PORT,
  RELAY_V4,
  requestedTransport,
  SERVICE,
  success,
  summarize,
} from '../../fixtures/helpers/turn-core-harness.js';

const CLIENT = '192.0.2.40';
const PEER = '198.51.100.7';

t.test('channel numbers: 0x4000 and 0x4FFF are accepted, 0x3FFF and 0x5000 get 400', async (t) => {
  const h = new Harness();
  const c = h.client(ALICE, CLIENT, 40000);
  c.allocate();
  t.same(summarize(c.channelBind(0x4000, PEER, 5000), ALICE), success(Method.ChannelBind), '0x4000');
  t.same(summarize(c.channelBind(0x4fff, PEER, 5001), ALICE), success(Method.ChannelBind), '0x4FFF');
  for (const n of [0x3fff, 0x5000, 0x7ffe, 0x0000, 0xffff]) {
    t.same(
      summarize(c.channelBind(n, PEER, 5002), ALICE),
      failure(Method.ChannelBind, 400),
      `0x${n.toString(16)}`,
    );
  }
  t.equal(h.fwd(c.allocation()).channelsByNumber.size, 2);
});

t.test('with maxChannel 0x7FFE (rfc5766-channel-numbers) 0x5000 and 0x7FFE are accepted', async (t) => {
  const h = new Harness({ turn: { maxChannel: RFC5766_CHANNEL_MAX } });
  const c = h.client(ALICE, CLIENT, 40001);
  c.allocate();
  t.same(summarize(c.channelBind(0x5000, PEER, 5000), ALICE), success(Method.ChannelBind));
  t.same(summarize(c.channelBind(0x7ffe, PEER, 5001), ALICE), success(Method.ChannelBind));
  t.same(summarize(c.channelBind(0x7fff, PEER, 5002), ALICE), failure(Method.ChannelBind, 400));
  c.channelData(0x5000, Buffer.from('legacy'));
  t.same(
    c.relay().sent.map((d) => [d.data.toString(), d.address, d.port]),
    [['legacy', PEER, 5000]],
    'ChannelData on 0x5000 is relayed',
  );
});

t.test('400 without CHANNEL-NUMBER, without or with two XOR-PEER-ADDRESS', async (t) => {
  const h = new Harness();
  const c = h.client(ALICE, CLIENT, 40002);
  c.allocate();
  const cases: [string, Build][] = [
    ['no CHANNEL-NUMBER', (w) => w.addAddress(AttrType.XorPeerAddress, PEER, 5000, true)],
    ['no XOR-PEER-ADDRESS', (w) => w.addChannelNumber(0x4000)],
    [
      'two XOR-PEER-ADDRESS',
      (w) =>
        w
          .addChannelNumber(0x4000)
          .addAddress(AttrType.XorPeerAddress, PEER, 5000, true)
          .addAddress(AttrType.XorPeerAddress, PEER, 5001, true),
    ],
    [
      'a 2-byte CHANNEL-NUMBER',
      (w) =>
        w
          .addBytes(AttrType.ChannelNumber, Buffer.from([0x40, 0]))
          .addAddress(AttrType.XorPeerAddress, PEER, 5000, true),
    ],
  ];
  for (const [name, build] of cases) {
    t.same(summarize(c.request(Method.ChannelBind, build), ALICE), failure(Method.ChannelBind, 400), name);
  }
  t.equal(h.fwd(c.allocation()).channelsByNumber.size, 0);
});

t.test(
  'a channel bound to one peer cannot be bound to another; nor a peer to a second channel',
  async (t) => {
    const h = new Harness();
    const c = h.client(ALICE, CLIENT, 40003);
    c.allocate();
    t.same(summarize(c.channelBind(0x4001, PEER, 5000), ALICE), success(Method.ChannelBind));
    t.same(
      summarize(c.channelBind(0x4001, PEER, 5001), ALICE),
      failure(Method.ChannelBind, 400),
      'same channel, another port',
    );
    t.same(
      summarize(c.channelBind(0x4001, '198.51.100.8', 5000), ALICE),
      failure(Method.ChannelBind, 400),
      'same channel, another address',
    );
    t.same(
      summarize(c.channelBind(0x4002, PEER, 5000), ALICE),
      failure(Method.ChannelBind, 400),
      'same peer, another channel',
    );
    const a = c.allocation()!;
    t.equal(h.fwd(a).channelsByNumber.size, 1);
    t.equal(h.fwd(a).channelsByNumber.get(0x4001)?.peerPort, 5000, 'the binding is unchanged');
    t.equal(h.plane.channelForPeer(a, PEER, 5000, h.nowSec)?.number, 0x4001);
  },
);

t.test('rebinding the same pair refreshes the channel and its permission', async (t) => {
  const h = new Harness();
  const c = h.client(ALICE, CLIENT, 40004);
  c.allocate(requestedTransport((w) => w.addUint32(AttrType.Lifetime, 3600)));
  c.channelBind(0x4003, PEER, 5000);
  const a = c.allocation()!;
  const ch = h.fwd(a).channelsByNumber.get(0x4003)!;
  t.equal(ch.expiresAtSec, h.nowSec + 600);
  t.equal(h.fwd(a).permissions.get(PEER), h.nowSec + 300);
  h.advance(250);
  t.same(summarize(c.channelBind(0x4003, PEER, 5000), ALICE), success(Method.ChannelBind));
  t.equal(h.fwd(a).channelsByNumber.get(0x4003), ch, 'the same binding');
  t.equal(ch.expiresAtSec, h.nowSec + 600, 'its expiry moved');
  t.equal(h.fwd(a).permissions.get(PEER), h.nowSec + 300, 'the permission too');
  h.advance(599);
  c.channelData(0x4003, Buffer.from('still'));
  t.equal(c.relay().sent.length, 1, 'alive 849 s after the first bind');
});

t.test('an expired channel frees its number for another peer and the peer for another number', async (t) => {
  const h = new Harness();
  const c = h.client(ALICE, CLIENT, 40005);
  c.allocate(requestedTransport((w) => w.addUint32(AttrType.Lifetime, 3600)));
  h.advance(5); // off the sweep's 10 s pruning grid: expiry is checked per packet
  c.channelBind(0x4004, PEER, 5000);
  h.advance(599);
  t.same(
    summarize(c.channelBind(0x4004, '198.51.100.8', 5000), ALICE),
    failure(Method.ChannelBind, 400),
    '599 s: still bound',
  );
  h.advance(1);
  c.channelData(0x4004, Buffer.from('late'));
  t.equal(c.relay().sent.length, 0, 'ChannelData on the expired channel is dropped');
  t.equal(h.stats.droppedNoChannel, 1);
  t.same(
    summarize(c.channelBind(0x4004, '198.51.100.8', 5000), ALICE),
    success(Method.ChannelBind),
    'the number is bound to another peer',
  );
  t.same(
    summarize(c.channelBind(0x4005, PEER, 5000), ALICE),
    success(Method.ChannelBind),
    'the old peer to another number',
  );
  const a = c.allocation()!;
  t.same(
    [...h.fwd(a).channelsByNumber.values()].map((ch) => [ch.number, ch.peerAddress, ch.peerPort]).sort(),
    [
      [0x4004, '198.51.100.8', 5000],
      [0x4005, PEER, 5000],
    ],
  );
  c.channelData(0x4004, Buffer.from('x'));
  c.channelData(0x4005, Buffer.from('y'));
  t.same(
    c.relay().sent.map((d) => [d.data.toString(), d.address]),
    [
      ['x', '198.51.100.8'],
      ['y', PEER],
    ],
  );
});

t.test('ChannelBind installs the permission for the peer IP', async (t) => {
  const h = new Harness();
  const c = h.client(ALICE, CLIENT, 40006);
  c.allocate();
  const a = c.allocation()!;
  t.equal(h.fwd(a).permissions.size, 0);
  c.channelBind(0x4006, PEER, 5000);
  t.equal(h.fwd(a).permissions.get(PEER), h.nowSec + 300);
  h.fromPeer(c.relay(), Buffer.from('from another port'), PEER, 5999);
  t.equal(c.received().length, 2, 'any port of the peer IP passes (as a Data indication)');
  c.send(PEER, 6000, Buffer.from('send'));
  t.equal(c.relay().sent.length, 1, 'and Send indications to it are relayed');
});

t.test('403 for a denied peer, nothing bound', async (t) => {
  const h = new Harness();
  const c = h.client(ALICE, CLIENT, 40007);
  c.allocate();
  for (const peer of ['10.0.0.1', '127.0.0.1', '169.254.169.254', '224.0.0.1']) {
    t.same(summarize(c.channelBind(0x4007, peer, 5000), ALICE), failure(Method.ChannelBind, 403), peer);
  }
  const a = c.allocation()!;
  t.equal(h.fwd(a).channelsByNumber.size, 0);
  t.equal(h.fwd(a).permissions.size, 0);
});

t.test(
  "the server's own service address and port is refused, though its IP is an allowed peer",
  async (t) => {
    const h = new Harness();
    const c = h.client(ALICE, CLIENT, 40008);
    c.allocate();
    t.same(
      summarize(c.channelBind(0x4008, SERVICE.address, SERVICE.port), ALICE),
      failure(Method.ChannelBind, 403),
    );
    t.same(
      summarize(c.channelBind(0x4008, RELAY_V4.advertised, SERVICE.port), ALICE),
      failure(Method.ChannelBind, 403),
      'the listener on the advertised relay address',
    );
    t.same(
      summarize(c.channelBind(0x4008, SERVICE.address, SERVICE.port + 1), ALICE),
      success(Method.ChannelBind),
      'another port of the same address is an ordinary peer',
    );
  },
);

t.test('relay to relay: own relay addresses pass only with a port of the relay range', async (t) => {
  const h = new Harness();
  const c = h.client(ALICE, CLIENT, 40009);
  c.allocate();
  for (const [i, address] of [RELAY_V4.advertised, RELAY_V4.local].entries()) {
    t.same(
      summarize(c.channelBind(0x4009 + i, address, MIN_PORT + 1 + i), ALICE),
      success(Method.ChannelBind),
      address,
    );
    for (const port of [MIN_PORT - 1, MAX_PORT + 1, 22]) {
      t.same(
        summarize(c.channelBind(0x400a + i, address, port), ALICE),
        failure(Method.ChannelBind, 403),
        `${address}:${port}`,
      );
    }
  }
});

t.test('508 beyond maxChannels', async (t) => {
  const h = new Harness({ turn: { maxChannels: 2 } });
  const c = h.client(ALICE, CLIENT, 40010);
  c.allocate();
  t.same(summarize(c.channelBind(0x4000, PEER, 1), ALICE), success(Method.ChannelBind));
  t.same(summarize(c.channelBind(0x4001, PEER, 2), ALICE), success(Method.ChannelBind));
  t.same(summarize(c.channelBind(0x4002, PEER, 3), ALICE), failure(Method.ChannelBind, 508));
  t.same(summarize(c.channelBind(0x4001, PEER, 2), ALICE), success(Method.ChannelBind), 'a refresh is fine');
});

t.test('ChannelBind to a peer with port 0 is refused (dgram cannot send to it)', async (t) => {
  const h = new Harness();
  const c = h.client(ALICE, CLIENT, 40011);
  c.allocate();
  const reply = c.channelBind(0x4010, PEER, 0);
  t.equal(summarize(reply, ALICE)?.cls, 'error', 'refused (400 or 403)');
  t.doesNotThrow(() => c.channelData(0x4010, Buffer.from('boom')), 'ChannelData does not throw');
});

t.test('refreshing a channel does not push the live permissions past maxPermissions', async (t) => {
  const h = new Harness({ turn: { maxPermissions: 2 } });
  const c = h.client(ALICE, CLIENT, 40012);
  c.allocate(requestedTransport((w) => w.addUint32(AttrType.Lifetime, 3600)));
  const a = c.allocation()!;
  t.same(summarize(c.channelBind(0x4000, PEER, 5000), ALICE), success(Method.ChannelBind));
  h.advance(300); // the permission has expired, the channel lives on
  t.same(
    summarize(c.createPermission(['198.51.100.8', '198.51.100.9']), ALICE),
    success(Method.CreatePermission),
    'two live permissions: the cap',
  );
  const reply = c.channelBind(0x4000, PEER, 5000);
  t.ok(
    h.plane.livePermissions(a, h.nowSec) <= 2,
    `live permissions ${h.plane.livePermissions(a, h.nowSec)} ≤ 2`,
  );
  t.same(summarize(reply, ALICE), failure(Method.ChannelBind, 508), '508 like a new binding');
});
