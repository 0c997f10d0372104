/**
 * The relay limits in the JavaScript data plane: `relay-payload-policy webrtc` (RFC 7983 first
 * bytes, both directions, both client paths), and the token buckets of `max-bps`, `user-max-bps`
 * and `bps-capacity`, driven by the harness's manual clock.
 */
import t from 'tap';
import {
  BURST_SECONDS,
  isWebRtcPayload,
  Limit,
  NO_RELAY_LIMITS,
  RelayLimiter,
  type RelayLimitOptions,
  TokenBucket,
} from '../../../src/core/turn/relay-limits.js';
import { TUNNEL_PAYLOADS, WEBRTC_PAYLOADS } from '../../fixtures/helpers/payloads.js';
import { ALICE, BOB, Harness, RELAY_V6 } from '../../fixtures/helpers/turn-core-harness.js';

const PEER = '198.51.100.7';

/** RFC 7983 §7: the ranges of STUN, DTLS and RTP/RTCP (ZRTP 16–19 and TURN channels 64–79 are not WebRTC payloads). */
const RFC7983_WEBRTC: readonly [number, number][] = [
  [0, 3],
  [20, 63],
  [128, 191],
];

const limits = (o: Partial<RelayLimitOptions>): RelayLimitOptions => ({ ...NO_RELAY_LIMITS, ...o });

t.test('isWebRtcPayload: exactly the RFC 7983 ranges of STUN, DTLS and RTP/RTCP', async (t) => {
  for (let b = 0; b < 256; b++) {
    const expected = RFC7983_WEBRTC.some(([lo, hi]) => b >= lo && b <= hi);
    if (isWebRtcPayload(Buffer.from([b, 0, 0])) !== expected) t.fail(`first byte ${b}`);
  }
  t.notOk(isWebRtcPayload(Buffer.alloc(0)), 'an empty payload has no first byte: refused');
  for (const [name, p] of Object.entries(WEBRTC_PAYLOADS)) t.ok(isWebRtcPayload(p), name);
  for (const [name, p] of Object.entries(TUNNEL_PAYLOADS)) t.notOk(isWebRtcPayload(p), name);
});

/** Offers `offeredBps` in `size`-byte packets for `seconds` (1 ms steps); returns the bytes let through. */
function offer(
  pass: (bytes: number, nowMs: number) => boolean,
  offeredBps: number,
  size: number,
  seconds: number,
): number {
  let due = 0;
  let passed = 0;
  for (let ms = 0; ms < seconds * 1000; ms++) {
    due += offeredBps / 1000;
    while (due >= size) {
      due -= size;
      if (pass(size, ms)) passed += size;
    }
  }
  return passed;
}

/** A packet of n bytes through bucket `b` at `rate` bytes/s: passes (and pays) or is refused. */
function take(b: TokenBucket, rate: number): (n: number, now: number) => boolean {
  return (n, now) => {
    if (!b.ready(rate, now)) return false;
    b.tokens -= n;
    return true;
  };
}

t.test('TokenBucket: 3× the rate offered, the rate passes (plus one burst)', async (t) => {
  const rate = 40_000;
  const b = new TokenBucket();
  const passed = offer(take(b, rate), 3 * rate, 1000, 10);
  const expected = rate * 10 + rate * BURST_SECONDS;
  t.ok(Math.abs(passed - expected) <= 2000, `passed ${passed}, expected ${expected} ± 2 packets`);
});

t.test('TokenBucket: a flow under the rate loses nothing', async (t) => {
  const rate = 40_000;
  const b = new TokenBucket();
  const offered = 0.9 * rate * 10;
  const passed = offer(take(b, rate), 0.9 * rate, 1200, 10);
  t.ok(passed >= offered - 1200, `passed ${passed} of ${offered}`);
});

t.test('TokenBucket: a packet larger than the burst passes, and its debt is repaid first', async (t) => {
  const b = new TokenBucket();
  t.ok(b.ready(1000, 0), 'starts full');
  b.tokens -= 5000; // 5 s of the rate
  t.notOk(b.ready(1000, 4000), 'still in debt after 4 s');
  t.ok(b.ready(1000, 5001), 'repaid after 5 s');
});

t.test('RelayLimiter: a user bucket shared by its allocations, the server bucket by all', async (t) => {
  const l = new RelayLimiter(limits({ userMaxBps: 10_000 }));
  const a1 = new TokenBucket();
  const a2 = new TokenBucket();
  const alice = l.acquire('alice');
  t.equal(l.acquire('alice'), alice, 'one bucket per user');
  const bob = l.acquire('bob');
  // Two allocations of alice, each offering 10 000 B/s: together they get 10 000 B/s.
  let passedAlice = 0;
  let passedBob = 0;
  for (let ms = 0; ms < 10_000; ms += 10) {
    for (const own of [a1, a2]) if (l.take(own, alice, 100, ms) === Limit.None) passedAlice += 100;
    if (l.take(new TokenBucket(), bob, 100, ms) === Limit.None) passedBob += 100;
  }
  t.ok(Math.abs(passedAlice - 101_250) <= 200, `alice: ${passedAlice} (10 s + one burst)`);
  t.equal(passedBob, 100_000, 'bob, under the limit, loses nothing');
  l.release(alice);
  l.release(alice);
  t.not(l.acquire('alice'), alice, 'the last release forgets the user');

  const s = new RelayLimiter(limits({ bpsCapacity: 1000, maxBps: 1_000_000 }));
  const u = s.acquire('x');
  t.equal(s.take(new TokenBucket(), u, 200, 0), Limit.None);
  t.equal(s.take(new TokenBucket(), u, 200, 0), Limit.Server, 'the burst (125 B) is spent');
  const tight = new RelayLimiter(limits({ maxBps: 100, userMaxBps: 1_000_000 }));
  const own = new TokenBucket();
  t.equal(tight.take(own, tight.acquire('y'), 100, 0), Limit.None);
  t.equal(tight.take(own, tight.acquire('y'), 100, 0), Limit.Allocation);
});

/** A harness with one allocation of alice holding a permission for PEER and channel 0x4001 to PEER:7000. */
function setup(options: RelayLimitOptions) {
  const h = new Harness({ allocator: { v6: RELAY_V6 } });
  h.plane.setLimits(options);
  const c = h.client(ALICE, '192.0.2.50', 40000);
  c.allocate();
  c.createPermission([PEER]);
  c.channelBind(0x4001, PEER, 7000);
  return { h, c, relay: c.relay() };
}

t.test('webrtc policy: tunnels refused both ways, on both client paths; WebRTC relayed', async (t) => {
  const { h, c, relay } = setup(limits({ payloadPolicy: 'webrtc' }));
  const tunnels = Object.values(TUNNEL_PAYLOADS);
  const webrtc = Object.values(WEBRTC_PAYLOADS);
  for (const p of [...tunnels, ...webrtc, Buffer.alloc(0)]) {
    c.send(PEER, 7001, p); // Send indication
    c.channelData(0x4001, p); // ChannelData
  }
  t.same(
    relay.sent.map((d) => d.data.toString('hex')),
    webrtc.flatMap((p) => [p.toString('hex'), p.toString('hex')]),
    'only the WebRTC payloads reached the peer, in order',
  );
  const before = c.received().length;
  for (const p of [...tunnels, ...webrtc, Buffer.alloc(0)]) {
    h.fromPeer(relay, p, PEER, 7000); // on the channel: ChannelData
    h.fromPeer(relay, p, PEER, 7001); // no channel: Data indication
  }
  t.equal(c.received().length - before, 2 * webrtc.length, 'only the WebRTC datagrams reached the client');
  const refused = 2 * 2 * (tunnels.length + 1);
  t.equal(h.stats.droppedPayloadPolicy, refused, 'counted in Stats');
  t.equal(h.fwd(c.allocation()).payloadRefused, refused, 'counted for the allocation');
  t.equal(h.fwd(c.allocation()).packetsToPeer, 2 * webrtc.length);

  h.plane.setLimits(NO_RELAY_LIMITS);
  c.channelData(0x4001, TUNNEL_PAYLOADS['quicLong']!);
  t.equal(relay.sent.length, 2 * webrtc.length + 1, 'policy any (reload): relayed again');
});

t.test('max-bps: the allocation gets its rate, both directions drawing from one bucket', async (t) => {
  const rate = 20_000;
  const { h, c, relay } = setup(limits({ maxBps: rate }));
  const rtp = Buffer.alloc(150, 0x80);
  let toPeer = 0;
  let toClient = 0;
  // 3× the rate, half each way, for 5 s in 5 ms steps.
  for (let ms = 0; ms < 5000; ms += 5) {
    const before = relay.sent.length;
    c.channelData(0x4001, rtp);
    toPeer += relay.sent.length - before;
    const got = c.received().length;
    h.fromPeer(relay, rtp, PEER, 7000);
    toClient += c.received().length - got;
    h.advanceMs(5);
  }
  const bytes = (toPeer + toClient) * 150;
  const expected = rate * 5 + rate * BURST_SECONDS;
  t.ok(Math.abs(bytes - expected) <= 1000, `relayed ${bytes} B, expected ${expected}`);
  t.ok(toPeer > 0 && toClient > 0, `both directions relayed (${toPeer} / ${toClient})`);
  const dropped = 2 * 1000 - toPeer - toClient;
  t.equal(h.stats.droppedMaxBps, dropped, 'the rest counted as max_bps');
  t.equal(h.fwd(c.allocation()).bandwidthDropped, dropped);
  t.equal(h.stats.droppedUserMaxBps + h.stats.droppedBpsCapacity, 0);
});

t.test('user-max-bps: two allocations of one user share it; another user is not held back', async (t) => {
  const h = new Harness({ allocator: { v6: RELAY_V6 } });
  h.plane.setLimits(limits({ userMaxBps: 10_000 }));
  const clients = [
    h.client(ALICE, '192.0.2.50', 40000),
    h.client(ALICE, '192.0.2.51', 40000),
    h.client(BOB, '192.0.2.52', 40000),
  ];
  for (const c of clients) {
    c.allocate();
    c.createPermission([PEER]);
    c.channelBind(0x4001, PEER, 7000);
  }
  const rtp = Buffer.alloc(100, 0x80);
  for (let ms = 0; ms < 4000; ms += 10) {
    // alice: 10 000 B/s each, taking turns to go first (as packets interleave on the wire)
    const [first, second] = ms % 20 === 0 ? [clients[0]!, clients[1]!] : [clients[1]!, clients[0]!];
    first.channelData(0x4001, rtp);
    second.channelData(0x4001, rtp);
    if (ms % 20 === 0) clients[2]!.channelData(0x4001, rtp); // bob: 5 000 B/s
    h.advanceMs(10);
  }
  const [a1, a2, bob] = clients.map((c) => c.relay().sent.length * 100);
  const alice = a1! + a2!;
  t.ok(Math.abs(alice - 41_250) <= 200, `alice's two allocations: ${alice} B in 4 s (10 000 B/s + burst)`);
  t.ok(a1! > 10_000 && a2! > 10_000, `shared between them: ${a1} / ${a2}`);
  t.equal(bob, 200 * 100, 'bob under the limit: nothing dropped');
  t.equal(h.stats.droppedUserMaxBps, 800 - alice / 100);
});

t.test('bps-capacity: every allocation draws from the server bucket', async (t) => {
  const h = new Harness({ allocator: { v6: RELAY_V6 } });
  h.plane.setLimits(limits({ bpsCapacity: 10_000 }));
  const clients = [h.client(ALICE, '192.0.2.50', 40000), h.client(BOB, '192.0.2.52', 40000)];
  for (const c of clients) {
    c.allocate();
    c.createPermission([PEER]);
    c.channelBind(0x4001, PEER, 7000);
  }
  const rtp = Buffer.alloc(100, 0x80);
  for (let ms = 0; ms < 4000; ms += 10) {
    for (const c of clients) c.channelData(0x4001, rtp);
    h.advanceMs(10);
  }
  const total = clients.reduce((n, c) => n + c.relay().sent.length * 100, 0);
  t.ok(Math.abs(total - 41_250) <= 200, `both users together: ${total} B in 4 s`);
  t.equal(h.stats.droppedBpsCapacity, 800 - total / 100);
});
