/**
 * The relay paths (RFC 8656 §11, §12.5–§12.7): Send indications and ChannelData to peers, Data
 * indications and ChannelData to clients, isolation between allocations, and relay to relay
 * behind 1:1 NAT.
 */
import t from 'tap';
import { encodeChannelData } from '../../../src/core/channel-data.js';
import { AttrType, Class, Family, HEADER_LENGTH, Method } from '../../../src/core/constants.js';
import { readAddress, readBytes } from '../../../src/core/stun/attrs.js';
import { decodeStun } from '../../../src/core/stun/decode.js';
import { StunWriter } from '../../../src/core/stun/encode.js';
import {
  ALICE,
  BOB,
  type Build,
  FakeEndpoint,
  type FakeRelay,
  Harness,
  MAX_PORT,
  MIN_PORT,
  RELAY_V4,
  RELAY_V6,
  requestedTransport,
  SERVICE,
  success,
  summarize,
  type TurnClient,
} from '../../fixtures/helpers/turn-core-harness.js';

const CLIENT = '192.0.2.50';
const PEER = '198.51.100.7';
const PAYLOAD = Buffer.from('hello'); // 5 bytes: not a multiple of 4

/** tap's Test type (the last overload of `t.test` takes only the callback). */
type TapTest = Parameters<Parameters<typeof t.test>[0]>[0];

function buildIndication(build: Build): Buffer {
  const w = new StunWriter().start(Method.Send, Class.Indication, Buffer.alloc(12, 7));
  build(w);
  return w.finish();
}

/** A harness with one allocated UDP client holding a permission for PEER. */
function setup(endpoint?: FakeEndpoint): { h: Harness; c: TurnClient; relay: FakeRelay } {
  const h = new Harness({ allocator: { v6: RELAY_V6 } });
  const c = h.client(ALICE, CLIENT, 40000, endpoint ?? h.udp);
  c.allocate();
  c.createPermission([PEER]);
  return { h, c, relay: c.relay() };
}

t.test('a Send indication to a permitted peer is relayed with exactly the DATA bytes', async (t) => {
  const { h, c, relay } = setup();
  c.send(PEER, 7000, PAYLOAD);
  c.send(PEER, 7001, Buffer.alloc(0));
  const big = Buffer.alloc(1400, 0xab);
  c.send(PEER, 7002, big);
  t.same(
    relay.sent.map((d) => [d.data.toString('hex'), d.address, d.port]),
    [
      [PAYLOAD.toString('hex'), PEER, 7000],
      ['', PEER, 7001],
      [big.toString('hex'), PEER, 7002],
    ],
  );
  t.equal(h.stats.relayedToPeerPackets, 3);
  t.equal(h.stats.relayedToPeerBytes, 5 + 1400);
  t.equal(h.fwd(c.allocation()).packetsToPeer, 3);
  t.equal(c.received().length, 1, 'never answered (only the Allocate success went out)');
});

t.test(
  'Send indications that are dropped: no permission, DONT-FRAGMENT, missing parts, no allocation',
  async (t) => {
    const { h, c, relay } = setup();
    c.send('198.51.100.8', 7000, PAYLOAD);
    t.equal(h.stats.droppedNoPermission, 1, 'no permission for the peer');
    c.send(PEER, 7000, PAYLOAD, (w) => w.addFlag(AttrType.DontFragment));
    t.equal(h.stats.droppedMalformed, 1, 'DONT-FRAGMENT is not supported, so the indication is discarded');
    c.send('2001:db8::7', 7000, PAYLOAD);
    t.equal(h.stats.droppedNoPermission, 2, 'an IPv6 peer of an IPv4 allocation');
    const noData = c.h.handle(
      buildIndication((w) => w.addAddress(AttrType.XorPeerAddress, PEER, 7000, true)),
      CLIENT,
      40000,
    );
    t.equal(noData, null);
    const noPeer = c.h.handle(
      buildIndication((w) => w.addBytes(AttrType.Data, PAYLOAD)),
      CLIENT,
      40000,
    );
    t.equal(noPeer, null);
    t.equal(h.stats.droppedMalformed, 3, 'without DATA or without XOR-PEER-ADDRESS');
    const stranger = h.client(BOB, CLIENT, 40001);
    stranger.send(PEER, 7000, PAYLOAD);
    t.equal(h.stats.droppedNoAllocation, 1, 'from a 5-tuple without allocation');
    // A permission for the service's IP does not open the service's own port.
    c.createPermission([SERVICE.address]);
    c.send(SERVICE.address, SERVICE.port, PAYLOAD);
    t.equal(h.stats.droppedPeerPolicy, 1, "the server's own listener");
    t.equal(relay.sent.length, 0, 'nothing reached any peer');
  },
);

t.test('ChannelData on a bound channel reaches the peer; on an unbound one it is dropped', async (t) => {
  const { h, c, relay } = setup();
  c.channelBind(0x4000, PEER, 7000);
  c.channelData(0x4000, PAYLOAD);
  // UDP padding (or any trailing bytes) after the data: only `length` bytes are relayed.
  const padded = Buffer.concat([encodeChannelData(0x4000, PAYLOAD, true), Buffer.from([9, 9, 9, 9])]);
  h.channelData(padded, CLIENT, 40000);
  c.channelData(0x4000, Buffer.alloc(0));
  t.same(
    relay.sent.map((d) => [d.data.toString('hex'), d.address, d.port]),
    [
      [PAYLOAD.toString('hex'), PEER, 7000],
      [PAYLOAD.toString('hex'), PEER, 7000],
      ['', PEER, 7000],
    ],
    'a zero-length ChannelData still sends an empty datagram (RFC 8656 §12.6)',
  );
  c.channelData(0x4001, PAYLOAD);
  t.equal(h.stats.droppedNoChannel, 1, 'unbound channel');
  const short = encodeChannelData(0x4000, PAYLOAD, false).subarray(0, 7);
  h.channelData(short, CLIENT, 40000);
  t.equal(h.stats.droppedMalformed, 1, 'a datagram shorter than its length field is malformed');
  t.equal(relay.sent.length, 3);
});

t.test('a peer packet on a bound channel goes to a UDP client as ChannelData without padding', async (t) => {
  const { h, c, relay } = setup();
  c.channelBind(0x4abc, PEER, 7000);
  const before = h.udp.sentParts.length;
  h.fromPeer(relay, PAYLOAD, PEER, 7000);
  const msg = c.received().at(-1)!.buf;
  t.equal(msg.toString('hex'), `4abc0005${PAYLOAD.toString('hex')}`, 'header + payload, 9 bytes');
  t.equal(h.udp.sentParts.length, before + 1);
  t.equal(h.udp.sentParts.at(-1)?.length, 2, 'header and payload as two buffers (scatter/gather)');
  t.equal(h.stats.relayedToClientPackets, 1);
  t.equal(h.stats.relayedToClientBytes, 5);
  t.equal(h.fwd(c.allocation()).bytesToClient, 5);
});

t.test('a peer packet on a bound channel goes to a TCP client as ChannelData padded to 4', async (t) => {
  const tcp = new FakeEndpoint('tcp');
  const { h, c, relay } = setup(tcp);
  c.channelBind(0x4001, PEER, 7000);
  h.fromPeer(relay, PAYLOAD, PEER, 7000);
  const msg = c.received().at(-1)!.buf;
  t.equal(msg.toString('hex'), `40010005${PAYLOAD.toString('hex')}000000`, '4 + 5 + 3 zero bytes');
  h.fromPeer(relay, Buffer.from('four'), PEER, 7000);
  t.equal(c.received().at(-1)!.buf.length, 8, 'no padding needed for 4 bytes');
});

/** Decodes a Data indication sent to the client and returns its peer and data. */
function dataIndication(t: TapTest, buf: Buffer) {
  const r = decodeStun(buf);
  t.ok(r.ok, 'decodes as STUN');
  if (!r.ok) return undefined;
  const v = r.view;
  t.equal(v.cls, Class.Indication);
  t.equal(v.method, Method.Data);
  t.equal(v.integrityAt, -1, 'indications are not signed');
  t.equal(buf.readUInt16BE(2), buf.length - HEADER_LENGTH, 'the length field covers everything sent');
  return { peer: readAddress(v, AttrType.XorPeerAddress), data: readBytes(v, AttrType.Data) };
}

t.test('a peer packet without a channel goes to the client as a Data indication', async (t) => {
  const { h, c, relay } = setup();
  h.fromPeer(relay, PAYLOAD, PEER, 7000);
  const got = dataIndication(t, c.received().at(-1)!.buf);
  t.same(got?.peer, { family: Family.IPv4, address: PEER, port: 7000 });
  t.same(got?.data, PAYLOAD);
  // Two indications get different transaction IDs (RFC 8489 §6).
  h.fromPeer(relay, PAYLOAD, PEER, 7000);
  const [x, y] = c.received().slice(-2);
  t.not(x!.buf.toString('hex', 8, 20), y!.buf.toString('hex', 8, 20));
  t.equal(h.stats.relayedToClientPackets, 2);
});

t.test('Data indications for IPv6 peers and over TCP decode too', async (t) => {
  const tcp = new FakeEndpoint('tcp');
  const h = new Harness({ allocator: { v6: RELAY_V6 } });
  const c = h.client(ALICE, CLIENT, 40000, tcp);
  c.allocate(requestedTransport((w) => w.addLeadingByte(AttrType.RequestedAddressFamily, Family.IPv6)));
  c.createPermission(['2001:db8::7']);
  const data = Buffer.from('0123456');
  h.fromPeer(c.relay(6), data, '2001:db8::7', 7000);
  const msg = c.received().at(-1)!.buf;
  t.equal(msg.length % 4, 0, 'padded');
  const got = dataIndication(t, msg);
  t.same(got?.peer, { family: Family.IPv6, address: '2001:db8::7', port: 7000 });
  t.same(got?.data, data);
});

t.test('a packet from a peer without permission is dropped', async (t) => {
  const { h, c, relay } = setup();
  h.fromPeer(relay, PAYLOAD, '198.51.100.8', 7000);
  h.fromPeer(relay, PAYLOAD, '10.0.0.99', 7000);
  t.equal(c.received().length, 1, 'only the Allocate success');
  t.equal(h.stats.droppedNoPermission, 2);
  t.equal(h.stats.relayedToClientPackets, 0);
});

t.test('isolation: two allocations never see each other’s traffic', async (t) => {
  const h = new Harness();
  const tcp = new FakeEndpoint('tcp');
  const a = h.client(ALICE, CLIENT, 40000);
  const b = h.client(BOB, CLIENT, 40001);
  for (const c of [a, b]) {
    t.same(summarize(c.allocate(), c.creds), success(Method.Allocate));
    c.channelBind(0x4000, PEER, 7000);
  }
  t.not(a.relay(), b.relay());
  a.channelData(0x4000, Buffer.from('from-a'));
  b.channelData(0x4000, Buffer.from('from-b'));
  a.send(PEER, 7000, Buffer.from('send-a'));
  t.same(
    a.relay().sent.map((d) => d.data.toString()),
    ['from-a', 'send-a'],
  );
  t.same(
    b.relay().sent.map((d) => d.data.toString()),
    ['from-b'],
  );
  h.fromPeer(a.relay(), Buffer.from('to-a'), PEER, 7000);
  h.fromPeer(b.relay(), Buffer.from('to-b'), PEER, 7000);
  t.equal(a.received().at(-1)?.buf.subarray(4).toString(), 'to-a');
  t.equal(b.received().at(-1)?.buf.subarray(4).toString(), 'to-b');
  t.equal(a.received().length, 2);
  t.equal(b.received().length, 2);
  // Same address and port as `a`, on another endpoint (a TCP connection): another 5-tuple.
  const sameAddressOtherTransport = h.client(ALICE, CLIENT, 40000, tcp);
  sameAddressOtherTransport.channelData(0x4000, Buffer.from('tcp'));
  sameAddressOtherTransport.send(PEER, 7000, Buffer.from('tcp'));
  t.equal(h.stats.droppedNoAllocation, 2, 'no allocation on that 5-tuple');
  b.channelBind(0x4001, '198.51.100.8', 7000);
  a.channelData(0x4001, Buffer.from('not-mine'));
  t.equal(h.stats.droppedNoChannel, 1, "another allocation's channel is unbound here");
  t.equal(a.relay().sent.length + b.relay().sent.length, 3);
  t.equal(tcp.sent.length, 0);
});

t.test('relay to relay behind 1:1 NAT: public addresses are delivered to the local ones', async (t) => {
  const h = new Harness();
  const a = h.client(ALICE, CLIENT, 40000);
  const b = h.client(BOB, '192.0.2.51', 40000);
  a.allocate();
  b.allocate();
  const ra = a.relay();
  const rb = b.relay();
  t.equal(ra.advertisedAddress, RELAY_V4.advertised);
  // 203.0.113.0/24 is denied by default; the server's own relay address is not.
  t.same(summarize(a.createPermission([RELAY_V4.advertised]), ALICE), success(Method.CreatePermission));
  t.same(summarize(b.createPermission([RELAY_V4.advertised]), BOB), success(Method.CreatePermission));
  a.send(RELAY_V4.advertised, rb.port, PAYLOAD);
  t.same(ra.sent, [{ data: PAYLOAD, port: rb.port, address: RELAY_V4.local }], 'sent to the local address');
  // What b's relay socket sees: the datagram from a's relay, whose source is the local address.
  h.fromPeer(rb, PAYLOAD, RELAY_V4.local, ra.port);
  const got = dataIndication(t, b.received().at(-1)!.buf);
  t.same(got?.peer, { family: Family.IPv4, address: RELAY_V4.advertised, port: ra.port }, 'shown as public');
  t.same(got?.data, PAYLOAD);
  // The same over channels.
  t.same(summarize(a.channelBind(0x4000, RELAY_V4.advertised, rb.port), ALICE), success(Method.ChannelBind));
  t.same(summarize(b.channelBind(0x4000, RELAY_V4.advertised, ra.port), BOB), success(Method.ChannelBind));
  a.channelData(0x4000, Buffer.from('chan'));
  t.same(ra.sent.at(-1), { data: Buffer.from('chan'), port: rb.port, address: RELAY_V4.local });
  h.fromPeer(rb, Buffer.from('chan'), RELAY_V4.local, ra.port);
  t.equal(b.received().at(-1)?.buf.toString('hex'), `40000004${Buffer.from('chan').toString('hex')}`);
});

t.test('a Send indication with an unknown comprehension-required attribute is discarded', async (t) => {
  const { h, c, relay } = setup();
  c.send(PEER, 7000, Buffer.from('required'), (w) => w.addBytes(0x0003, Buffer.alloc(4)));
  t.same(
    relay.sent.map((d) => d.data.toString()),
    [],
    'not relayed',
  );
  c.send(PEER, 7000, Buffer.from('optional'), (w) => w.addBytes(0x8123, Buffer.alloc(4)));
  t.equal(relay.sent.at(-1)?.data.toString(), 'optional', 'an unknown comprehension-optional one is ignored');
  t.equal(h.stats.relayedToPeerPackets, relay.sent.length);
});

// Regression: found here and fixed in f027264 (Send indications reached any port of the relay host).
t.test('a Send indication to an own relay address outside the relay port range is dropped', async (t) => {
  const { h, c, relay } = setup();
  t.same(
    summarize(c.createPermission([RELAY_V4.local, RELAY_V4.advertised]), ALICE),
    success(Method.CreatePermission),
  );
  c.send(RELAY_V4.local, MIN_PORT + 5, PAYLOAD);
  c.send(RELAY_V4.advertised, MAX_PORT, PAYLOAD);
  t.same(
    relay.sent.map((d) => [d.address, d.port]),
    [
      [RELAY_V4.local, MIN_PORT + 5],
      [RELAY_V4.local, MAX_PORT],
    ],
    'relay ports of the own relay address are reachable',
  );
  // Port 22 of the relay host's private address: ChannelBind refuses it (403), Send must too.
  t.same(summarize(c.channelBind(0x4000, RELAY_V4.local, 22), ALICE)?.code, 403);
  c.send(RELAY_V4.local, 22, PAYLOAD);
  c.send(RELAY_V4.advertised, 22, PAYLOAD);
  t.same(
    relay.sent.slice(2).map((d) => [d.address, d.port]),
    [],
    'nothing sent to 10.0.0.10:22',
  );
  t.equal(h.stats.droppedPeerPolicy, 2, 'counted as peer-policy drops');
});

t.test('a Send indication to a permitted peer on port 0 is dropped, not thrown', async (t) => {
  const { h, c, relay } = setup();
  t.doesNotThrow(() => c.send(PEER, 0, PAYLOAD), 'no exception out of StunCore.handle');
  t.equal(relay.sent.length, 0);
  t.equal(h.stats.relayedToPeerPackets, 0);
});
