/**
 * End-to-end TURN over UDP with our own client (test/fixtures/helpers/turn-client.ts) against the
 * built daemon on loopback: relaying both ways over channels and indications, Refresh, the
 * retransmission cache, isolation of allocations, relay to relay, nonce/permission/channel/
 * allocation expiry, quotas, the peer deny policy, DONT-FRAGMENT, EVEN-PORT reservations, IPv6
 * and dual allocations (RFC 6156, RFC 8656 §7.2), SHA-256 with USERHASH, relay port exhaustion.
 *
 * Each group starts its own daemon; the groups run in parallel (they mostly wait on lifetimes).
 */
import { randomBytes } from 'node:crypto';
import t, { type Test } from 'tap';
import { AttrType, Class, Method } from '../../src/core/constants.js';
import { readAddress, readBytes, readUnknownAttributes } from '../../src/core/stun/attrs.js';
import { decodeStun } from '../../src/core/stun/decode.js';
import { StunWriter } from '../../src/core/stun/encode.js';
import { longTermKey, verifyFingerprint } from '../../src/core/stun/integrity.js';
import { assertHealthy, refusal } from '../fixtures/helpers/assertions.js';
import { type Daemon, startDaemon } from '../fixtures/helpers/daemon.js';
import { bindingRequest, udpRequest } from '../fixtures/helpers/stun-client.js';
import {
  addUdpTransport,
  describe,
  freeUdpRange,
  type PeerAddress,
  sleep,
  TestPeer,
  TurnClient,
  type TurnCredentials,
  udpPortFree,
} from '../fixtures/helpers/turn-client.js';

const REALM = 'example.test';
const ALICE: TurnCredentials = { username: 'alice', password: 'wonderland', realm: REALM };
const BOB: TurnCredentials = { username: 'bob', password: 'builder', realm: REALM };
/** Lifetimes of the expiry group, seconds. Expiry is judged on a 1 s coarse clock: wait 1.75×+1 s. */
const SHORT = 2;
const EXPIRY_WAIT_MS = (SHORT + 1.5) * 1000;

t.jobs = 4;

interface Setup {
  d: Daemon;
  minPort: number;
  maxPort: number;
  client(creds?: TurnCredentials, host?: string, localAddress?: string): Promise<TurnClient>;
  peer(address?: string): Promise<TestPeer>;
}

/** Starts a daemon with alice and bob, the given relay range (or 100 free-ish ports) and `extra`. */
async function setup(
  t: Test,
  extra: string[],
  o: { listen?: string[]; range?: [number, number] } = {},
): Promise<Setup> {
  let range = o.range;
  if (range === undefined) {
    const start = await freeUdpRange(1);
    range = [start, Math.min(65535, start + 99)];
  }
  const [minPort, maxPort] = range;
  const listen = (o.listen ?? ['127.0.0.1']).flatMap((ip) => ['--listening-ip', ip]);
  const d = await startDaemon([
    ...listen,
    '--realm',
    REALM,
    '--user',
    'alice:wonderland',
    '--user',
    'bob:builder',
    '--min-port',
    String(minPort),
    '--max-port',
    String(maxPort),
    ...extra,
  ]);
  t.teardown(() => d.stop());
  return {
    d,
    minPort,
    maxPort,
    client: async (creds = ALICE, host = '127.0.0.1', localAddress?: string) => {
      const c = await TurnClient.connect(
        host,
        d.port,
        creds,
        localAddress === undefined ? {} : { localAddress },
      );
      t.teardown(() => c.close());
      return c;
    },
    peer: async (address = '127.0.0.1') => {
      const p = await TestPeer.bind(address);
      t.teardown(() => p.close());
      return p;
    },
  };
}

const relayOf = (a: { relayed: { address: string; port: number } }): PeerAddress => ({
  address: a.relayed.address,
  port: a.relayed.port,
});

// -----------------------------------------------------------------------------------------------

t.test('relaying on a daemon listening on 127.0.0.1 and ::1', { buffered: true }, async (t) => {
  const s = await setup(
    t,
    [
      '--allowed-peer-ip',
      '127.0.0.1',
      '--allowed-peer-ip',
      '127.0.0.2',
      '--allowed-peer-ip',
      '127.0.0.3',
      '--allowed-peer-ip',
      '::1',
    ],
    { listen: ['127.0.0.1', '::1'] },
  );

  t.test('Allocate, CreatePermission, ChannelBind: ChannelData round trip, exact bytes', async (t) => {
    const c = await s.client();
    const peer = await s.peer();
    const a = await c.allocate();
    t.equal(a.relayed.address, '127.0.0.1', 'IPv4 relay on the listening address');
    t.ok(a.relayed.port >= s.minPort && a.relayed.port <= s.maxPort, `relay port ${a.relayed.port} in range`);
    t.same(a.mapped, { family: 1, address: '127.0.0.1', port: c.localPort }, 'XOR-MAPPED-ADDRESS');
    // The default 600 s, counted from the request: 599 when the relay bind ends in the next second.
    t.ok(a.lifetime === 600 || a.lifetime === 599, `default lifetime (${a.lifetime} s)`);
    t.equal(a.response.integrity, 'sha1', 'success signed with MESSAGE-INTEGRITY');
    await c.createPermission(peer.address);
    await c.channelBind(0x4000, peer.address);
    for (const size of [1, 3, 4, 5, 100, 1200, 8000]) {
      const out = randomBytes(size);
      await c.sendChannel(0x4000, out);
      const got = await peer.next();
      t.same(got.data, out, `client → peer ${size} bytes`);
      t.same(got.from, relayOf(a), 'from the relayed address');
      const back = randomBytes(size);
      await peer.send(back, relayOf(a));
      const ev = await c.nextData();
      t.same(
        ev,
        { kind: 'channel', channel: 0x4000, data: back },
        `peer → client ${size} bytes as ChannelData`,
      );
    }
    // Padded ChannelData (as over TCP) is accepted too; the length field counts, not the padding.
    const odd = randomBytes(7);
    await c.sendChannel(0x4000, odd, true);
    t.same((await peer.next()).data, odd, 'padded ChannelData relayed without its padding');
    t.equal(c.strays, 0, 'nothing unexpected reached the client');
  });

  t.test('Send and Data indications round trip, exact bytes', async (t) => {
    const c = await s.client();
    const peer = await s.peer();
    const a = await c.allocate();
    await c.createPermission(peer.address);
    for (const size of [1, 2, 3, 4, 13, 1001]) {
      const out = randomBytes(size);
      await c.send(peer.address, out);
      const got = await peer.next();
      t.same(got.data, out, `Send indication → peer ${size} bytes`);
      t.same(got.from, relayOf(a));
      const back = randomBytes(size);
      await peer.send(back, relayOf(a));
      const ev = await c.nextData();
      t.same(
        ev,
        { kind: 'indication', peer: { family: 1, ...peer.address }, data: back },
        `peer → Data indication ${size} bytes`,
      );
    }
  });

  t.test('a peer without permission is not relayed, either way', async (t) => {
    const c = await s.client();
    const peer = await s.peer();
    const a = await c.allocate();
    await c.send(peer.address, Buffer.from('no permission yet'));
    await peer.send(Buffer.from('unsolicited'), relayOf(a));
    t.same(await peer.collect(300), [], 'Send indication without permission dropped');
    t.same(await c.collectData(0), [], 'peer packet without permission dropped');
  });

  t.test('Refresh LIFETIME 0 frees the relay port at once; a later Refresh gets 437', async (t) => {
    const c = await s.client();
    const a = await c.allocate();
    t.notOk(await udpPortFree(a.relayed.port), 'relay port held while allocated');
    t.equal(await c.refresh(1200), 1200, 'a Refresh grants the requested lifetime');
    t.equal(await c.refresh(300), 600, 'one below the default is raised to it (RFC 8656 §7.2)');
    t.equal(await c.refresh(99999), 3600, 'one above max-allocate-lifetime is capped');
    // Hand-built, so that its retransmission can be checked after the allocation is gone.
    const raw = c.buildRequest(Method.Refresh, (w) => w.addUint32(AttrType.Lifetime, 0));
    const r = await c.request(raw);
    t.ok(r.ok, 'Refresh 0 succeeds');
    t.ok(await udpPortFree(a.relayed.port), 'the relay port can be bound right after the response');
    const again = await c.request(raw);
    t.same(again.raw, r.raw, 'its retransmission gets the same success from the cache');
    const e = await refusal(c.refresh(600));
    t.equal(e.code, 437, 'a new Refresh: 437 Allocation Mismatch');
    t.equal(e.response.integrity, 'sha1', '437 signed');
    const b = await c.allocate();
    t.ok(b.relayed.port > 0, 'the same 5-tuple can allocate again');
  });

  t.test('a retransmitted Allocate gets the identical success; a new one gets 437', async (t) => {
    const c = await s.client();
    await c.challenge();
    const raw = c.buildRequest(Method.Allocate, addUdpTransport);
    const first = await c.request(raw);
    t.ok(first.ok, 'allocated');
    const second = await c.request(raw);
    t.same(second.raw, first.raw, 'byte-identical response to the retransmission');
    const third = await c.request(c.buildRequest(Method.Allocate, addUdpTransport));
    t.equal(third.code, 437, `a new transaction: ${describe(third)}`);
  });

  t.test('isolation: two clients with their own peers, same channel number', async (t) => {
    const [c1, c2] = [await s.client(), await s.client(BOB)];
    const [p1, p2] = [await s.peer('127.0.0.2'), await s.peer('127.0.0.3')];
    const [a1, a2] = [await c1.allocate(), await c2.allocate()];
    await c1.channelBind(0x4001, p1.address);
    await c2.channelBind(0x4001, p2.address);
    await c1.sendChannel(0x4001, Buffer.from('from c1'));
    await c2.sendChannel(0x4001, Buffer.from('from c2'));
    t.same(
      (await p1.collect(300)).map((p) => p.data.toString()),
      ['from c1'],
      'peer 1 gets c1 only',
    );
    t.same(
      (await p2.collect(0)).map((p) => p.data.toString()),
      ['from c2'],
      'peer 2 gets c2 only',
    );
    await p1.send(Buffer.from('to c1'), relayOf(a1));
    await p2.send(Buffer.from('to c2'), relayOf(a2));
    await p2.send(Buffer.from('p2 to c1 relay'), relayOf(a1)); // no permission for 127.0.0.3 on c1
    await p1.send(Buffer.from('p1 to c2 relay'), relayOf(a2)); // nor for 127.0.0.2 on c2
    const d1 = await c1.collectData(300);
    const d2 = await c2.collectData(0);
    t.same(
      d1.map((e) => e.data.toString()),
      ['to c1'],
      'c1 gets its peer only',
    );
    t.same(
      d2.map((e) => e.data.toString()),
      ['to c2'],
      'c2 gets its peer only',
    );
  });

  t.test('403 for denied peers; own service ports are never peers', async (t) => {
    const c = await s.client();
    const a = await c.allocate({ additionalIPv6: true });
    t.equal(a.relayedAll.length, 2, 'dual allocation, so IPv6 peer addresses are judged by policy');
    for (const address of ['10.0.0.1', '::ffff:10.0.0.1', '64:ff9b::a00:1', '169.254.169.254', '0.0.0.0']) {
      const e = await refusal(c.createPermission({ address }));
      t.equal(e.code, 403, `CreatePermission ${address}: 403`);
      t.equal(e.response.integrity, 'sha1', '403 signed');
      const b = await refusal(c.channelBind(0x4003, { address, port: 5000 }));
      t.equal(b.code, 403, `ChannelBind ${address}: 403`);
    }
    for (const address of ['127.0.0.1', '::ffff:127.0.0.1', '::1']) {
      const e = await refusal(c.channelBind(0x4004, { address, port: s.d.port }));
      t.equal(e.code, 403, `ChannelBind to the daemon's own port ${address}:${s.d.port}: 403`);
    }
    // A permission is per IP, so 127.0.0.1 is allowed; the listening port still is not a peer:
    // a Binding request sent there through the relay must not be answered back through it.
    await c.createPermission({ address: '127.0.0.1' });
    await c.send({ address: '127.0.0.1', port: s.d.port }, bindingRequest());
    t.same(await c.collectData(400), [], 'Send indication to the listening port dropped');
    // Control: the same request to a peer that echoes it comes back.
    const echo = await s.peer();
    echo.echo = true;
    await c.send(echo.address, bindingRequest());
    const ev = await c.nextData();
    t.equal(ev.kind, 'indication', 'echo peer reachable');
  });

  t.test('DONT-FRAGMENT: 420 with UNKNOWN-ATTRIBUTES', async (t) => {
    const c = await s.client();
    const e = await refusal(c.allocate({ dontFragment: true }));
    t.equal(e.code, 420);
    t.same(readUnknownAttributes(e.response.view), [AttrType.DontFragment], 'UNKNOWN-ATTRIBUTES: 0x001A');
    t.equal(e.response.integrity, 'sha1', '420 to an authenticated request is signed');
    const a = await c.allocate();
    t.ok(a.relayed.port > 0, 'the same client allocates without it');
  });

  t.test('EVEN-PORT with R: even port, RESERVATION-TOKEN; the token gets port + 1 once', async (t) => {
    const [c1, c2, c3] = [await s.client(), await s.client(), await s.client()];
    const a = await c1.allocate({ evenPort: { reserve: true } });
    t.equal(a.relayed.port % 2, 0, `even relay port ${a.relayed.port}`);
    t.equal(a.reservationToken?.length, 8, '8-byte RESERVATION-TOKEN');
    const b = await c2.allocate({ reservationToken: a.reservationToken! });
    t.equal(b.relayed.port, a.relayed.port + 1, 'the reserved odd port');
    t.equal(b.reservationToken, undefined);
    const e = await refusal(c3.allocate({ reservationToken: a.reservationToken! }));
    t.equal(e.code, 508, 'a used token: 508');
    const plain = await c3.allocate({ evenPort: { reserve: false } });
    t.equal(plain.relayed.port % 2, 0, 'EVEN-PORT without R: even port');
    t.equal(plain.reservationToken, undefined, 'and no token');
  });

  t.test('IPv6: client over ::1, REQUESTED-ADDRESS-FAMILY IPv6 relay, IPv6 peer', async (t) => {
    const c = await s.client(ALICE, '::1');
    const peer = await s.peer('::1');
    const a = await c.allocate({ family: 6 });
    t.equal(a.relayed.address, '::1', 'relayed on ::1');
    t.equal(a.relayed.family, 2);
    t.same(a.mapped, { family: 2, address: '::1', port: c.localPort });
    await c.createPermission(peer.address);
    const out = randomBytes(41);
    await c.send(peer.address, out);
    const got = await peer.next();
    t.same(got.data, out, 'Send indication over the IPv6 relay');
    t.same(got.from, relayOf(a));
    await peer.send(Buffer.from('v6 back'), relayOf(a));
    t.same(await c.nextData(), {
      kind: 'indication',
      peer: { family: 2, ...peer.address },
      data: Buffer.from('v6 back'),
    });
    await c.channelBind(0x4fff, peer.address);
    await c.sendChannel(0x4fff, Buffer.from('v6 channel'));
    t.same((await peer.next()).data, Buffer.from('v6 channel'), 'ChannelData over the IPv6 relay');
    await peer.send(Buffer.from('v6 channel back'), relayOf(a));
    t.same(await c.nextData(), { kind: 'channel', channel: 0x4fff, data: Buffer.from('v6 channel back') });
    const v4 = await refusal(c.createPermission({ address: '127.0.0.1' }));
    t.equal(v4.code, 443, 'IPv4 peer on an IPv6-only allocation: 443');
  });

  t.test('ADDITIONAL-ADDRESS-FAMILY: both relay addresses, both usable', async (t) => {
    const c = await s.client();
    const [p4, p6] = [await s.peer('127.0.0.1'), await s.peer('::1')];
    const a = await c.allocate({ additionalIPv6: true });
    t.same(
      a.relayedAll.map((r) => [r.family, r.address]),
      [
        [1, '127.0.0.1'],
        [2, '::1'],
      ],
      'IPv4 and IPv6 XOR-RELAYED-ADDRESS',
    );
    t.equal(a.addressError, undefined, 'no ADDRESS-ERROR-CODE');
    const r6 = a.relayedAll[1]!;
    await c.createPermission(p4.address, p6.address);
    await c.send(p4.address, Buffer.from('four'));
    await c.send(p6.address, Buffer.from('six'));
    const g4 = await p4.next();
    const g6 = await p6.next();
    t.same([g4.data.toString(), g4.from], ['four', relayOf(a)], 'IPv4 peer reached from the IPv4 relay');
    t.same(
      [g6.data.toString(), g6.from],
      ['six', { address: r6.address, port: r6.port }],
      'IPv6 peer from the IPv6 relay',
    );
    t.equal(await c.refresh(1200, { family: 6 }), 1200, 'Refresh with REQUESTED-ADDRESS-FAMILY IPv6');
  });

  t.test('SHA-256 integrity with USERHASH', async (t) => {
    const c = await s.client({ ...ALICE, sha256: true, userhash: true });
    const peer = await s.peer();
    const a = await c.allocate();
    t.ok(c.passwordAlgorithms !== undefined, 'the 401 offered PASSWORD-ALGORITHMS');
    t.equal(a.response.integrity, 'sha256', 'success signed with MESSAGE-INTEGRITY-SHA256');
    t.equal(a.response.view.integrityAt, -1, 'and not with MESSAGE-INTEGRITY');
    await c.channelBind(0x4100, peer.address);
    await c.sendChannel(0x4100, Buffer.from('sha'));
    t.same((await peer.next()).data, Buffer.from('sha'));
    t.equal(await c.refresh(1200), 1200, 'Refresh under SHA-256');
    // The request really carried USERHASH and no USERNAME.
    const raw = c.buildRequest(Method.Refresh, (w) => w.addUint32(AttrType.Lifetime, 100));
    const d = decodeStun(raw);
    t.ok(d.ok && readBytes(d.view, AttrType.Userhash)?.length === 32 && !d.view.has(AttrType.Username));
    // A wrong password under SHA-256 is refused.
    const bad = await s.client({ ...ALICE, password: 'wrong', sha256: true, userhash: true });
    const e = await refusal(bad.allocate());
    t.equal(e.code, 401, 'wrong password: 401');
  });

  t.test('ChannelBind rules: channel range, one peer per channel, one channel per peer', async (t) => {
    const c = await s.client();
    const [p1, p2] = [await s.peer(), await s.peer()];
    await c.allocate();
    for (const channel of [0x3fff, 0x5000, 0x7ffe, 0x8000, 0xffff]) {
      const e = await refusal(c.channelBind(channel, p1.address));
      t.equal(e.code, 400, `channel 0x${channel.toString(16)} outside 0x4000-0x4FFF: 400`);
    }
    await c.channelBind(0x4010, p1.address);
    t.ok((await c.channelBind(0x4010, p1.address)).ok, 'binding the same pair again refreshes it');
    t.equal((await refusal(c.channelBind(0x4010, p2.address))).code, 400, 'the channel to another peer: 400');
    t.equal((await refusal(c.channelBind(0x4011, p1.address))).code, 400, 'the peer on another channel: 400');
    await c.channelBind(0x4011, p2.address);
    await c.sendChannel(0x4011, Buffer.from('two'));
    await c.sendChannel(0x4010, Buffer.from('one'));
    t.equal((await p2.next()).data.toString(), 'two', 'each channel reaches its own peer');
    t.equal((await p1.next()).data.toString(), 'one');
  });

  t.test('another user on the same 5-tuple: 441; address family mismatches: 443/400', async (t) => {
    const c = await s.client();
    const a = await c.allocate();
    // Requests from the same socket signed as bob (the nonce is per address, not per user).
    const asBob = (method: number, build: (w: StunWriter) => void): Buffer => {
      const w = new StunWriter(512).start(method, Class.Request, randomBytes(12));
      build(w);
      w.addString(AttrType.Username, 'bob');
      w.addString(AttrType.Realm, REALM);
      w.addBytes(AttrType.Nonce, c.nonce!);
      w.addMessageIntegrity(longTermKey('bob', REALM, 'builder'));
      return w.finish();
    };
    const refresh = await c.request(asBob(Method.Refresh, (w) => w.addUint32(AttrType.Lifetime, 900)));
    t.equal(refresh.code, 441, `Refresh by bob on alice's allocation: ${describe(refresh)}`);
    const perm = await c.request(
      asBob(Method.CreatePermission, (w) => w.addAddress(AttrType.XorPeerAddress, '127.0.0.1', 0, true)),
    );
    t.equal(perm.code, 441, `CreatePermission by bob: ${describe(perm)}`);
    t.ok(a.relayed.port > 0);
    const e443 = await refusal(c.refresh(900, { family: 6 }));
    t.equal(e443.code, 443, 'Refresh with REQUESTED-ADDRESS-FAMILY IPv6 on an IPv4 allocation: 443');
    const e443p = await refusal(c.createPermission({ address: '::1' }));
    t.equal(e443p.code, 443, 'IPv6 peer on an IPv4 allocation: 443');
    const both = await s.client();
    const e400 = await refusal(both.allocate({ family: 6, additionalIPv6: true }));
    t.equal(e400.code, 400, 'REQUESTED- and ADDITIONAL-ADDRESS-FAMILY together: 400');
  });

  t.test(
    'the response cache is per client: a foreign transaction ID gets no other client’s answer',
    async (t) => {
      const [c1, c2] = [await s.client(), await s.client()];
      await c1.challenge();
      await c2.challenge();
      const tid = randomBytes(12);
      const r1 = await c1.request(c1.buildRequest(Method.Allocate, addUdpTransport, { tid }));
      const r2 = await c2.request(c2.buildRequest(Method.Allocate, addUdpTransport, { tid }));
      t.ok(r1.ok && r2.ok, 'both allocated');
      t.notSame(r2.raw, r1.raw, 'different answers');
      t.same(
        readAddress(r2.view, AttrType.XorMappedAddress),
        { family: 1, address: '127.0.0.1', port: c2.localPort },
        'c2 got its own mapped address',
      );
      t.equal(r2.integrity, 'sha1', 'signed for c2');
    },
  );

  t.test('empty payloads are relayed both ways, as ChannelData and as indications', async (t) => {
    const c = await s.client();
    const [p1, p2] = [await s.peer(), await s.peer()];
    const a = await c.allocate();
    await c.channelBind(0x4020, p1.address);
    await c.sendChannel(0x4020, Buffer.alloc(0));
    t.equal((await p1.next()).data.length, 0, 'empty ChannelData → empty datagram');
    await p1.send(Buffer.alloc(0), relayOf(a));
    t.same(await c.nextData(), { kind: 'channel', channel: 0x4020, data: Buffer.alloc(0) });
    await c.createPermission(p2.address);
    await c.send(p2.address, Buffer.alloc(0));
    t.equal((await p2.next()).data.length, 0, 'empty Send indication → empty datagram');
    await p2.send(Buffer.alloc(0), relayOf(a));
    t.same(await c.nextData(), {
      kind: 'indication',
      peer: { family: 1, ...p2.address },
      data: Buffer.alloc(0),
    });
  });

  t.test('FINGERPRINT in requests is answered with FINGERPRINT', async (t) => {
    const c = await TurnClient.connect('127.0.0.1', s.d.port, ALICE, { fingerprint: true });
    t.teardown(() => c.close());
    const a = await c.allocate();
    t.ok(
      a.response.view.fingerprintAt > 0 && verifyFingerprint(a.response.view),
      'success with a valid FINGERPRINT',
    );
    const e = await refusal(c.createPermission({ address: '10.0.0.1' }));
    t.ok(
      e.response.view.fingerprintAt > 0 && verifyFingerprint(e.response.view),
      'error with a valid FINGERPRINT',
    );
  });

  t.test('max-permissions (64): the 65th peer address gets 508', async (t) => {
    const c = await s.client();
    await c.allocate();
    // Permissions cost nothing on the wire: these public addresses are never sent to.
    const ips = Array.from({ length: 65 }, (_, i) => ({ address: `192.0.${i < 32 ? 3 : 4}.${i}` }));
    // Not 64 in one request: the decoder indexes at most 48 attributes per message.
    for (let k = 0; k < 4; k++) await c.createPermission(...ips.slice(16 * k, 16 * k + 16));
    t.equal((await refusal(c.createPermission(ips[64]!))).code, 508, '65th: 508');
    t.ok((await c.createPermission(ips[0]!, ips[63]!)).ok, 'refreshing existing ones is fine');
  });

  t.test('a nonce is bound to the client address: another socket gets 438', async (t) => {
    const [c1, c2] = [await s.client(), await s.client()];
    await c1.allocate();
    await c2.challenge();
    c2.nonce = c1.nonce; // c1's nonce, from c2's socket
    const r = await c2.request(c2.buildRequest(Method.Allocate, addUdpTransport));
    t.equal(r.code, 438, `foreign nonce: ${describe(r)}`);
    t.ok(readBytes(r.view, AttrType.Nonce) !== undefined, 'with a fresh NONCE for c2');
  });

  t.test(
    'dual allocation: Refresh 0 frees both relay ports; IPv6 client defaults to an IPv4 relay',
    async (t) => {
      const c = await s.client();
      const a = await c.allocate({ additionalIPv6: true });
      const [v4, v6] = [a.relayedAll[0]!, a.relayedAll[1]!];
      t.equal(await c.refresh(0), 0);
      t.ok(await udpPortFree(v4.port, '127.0.0.1'), 'IPv4 relay port free');
      t.ok(await udpPortFree(v6.port, '::1'), 'IPv6 relay port free');
      const c6 = await s.client(ALICE, '::1');
      const b = await c6.allocate();
      t.same(
        [b.relayed.family, b.relayed.address],
        [1, '127.0.0.1'],
        'no REQUESTED-ADDRESS-FAMILY: IPv4 relay',
      );
      t.same(b.mapped, { family: 2, address: '::1', port: c6.localPort });
    },
  );

  t.test('Binding still answered alongside TURN', async (t) => {
    const { view } = await udpRequest('127.0.0.1', s.d.port, bindingRequest());
    t.equal(view.cls, Class.Success);
    t.ok(readAddress(view, AttrType.XorMappedAddress));
  });

  t.test('the daemon is healthy after all of it', async (t) => assertHealthy(t, s.d));
});

t.test('relay to relay on a daemon with the default peer policy', { buffered: true }, async (t) => {
  const s = await setup(t, []);
  const [ca, cb] = [await s.client(), await s.client(BOB)];
  const [a, b] = [await ca.allocate(), await cb.allocate()];
  const ra = relayOf(a);
  const rb = relayOf(b);
  // 127.0.0.1 is loopback, denied by default, but other allocations of this server are reachable.
  await ca.createPermission(rb);
  await cb.createPermission(ra);
  await ca.send(rb, Buffer.from('a to b'));
  t.same(
    await cb.nextData(),
    { kind: 'indication', peer: { family: 1, ...ra }, data: Buffer.from('a to b') },
    'B hears A from A’s relay address',
  );
  await cb.channelBind(0x4abc, ra);
  await cb.sendChannel(0x4abc, Buffer.from('b to a'));
  t.same(
    await ca.nextData(),
    { kind: 'indication', peer: { family: 1, ...rb }, data: Buffer.from('b to a') },
    'A hears B',
  );
  await ca.channelBind(0x4abd, rb);
  await cb.sendChannel(0x4abc, Buffer.from('b to a on a channel'));
  t.same(
    await ca.nextData(),
    { kind: 'channel', channel: 0x4abd, data: Buffer.from('b to a on a channel') },
    'channel both ends',
  );
  // A loopback port outside the relay range stays denied.
  const peer = await s.peer();
  const e = await refusal(ca.channelBind(0x4002, peer.address));
  t.equal(e.code, 403, 'loopback non-relay peer: 403');
  // This daemon has IPv4 relay addresses only.
  const cv6 = await s.client();
  t.equal((await refusal(cv6.allocate({ family: 6 }))).code, 440, 'REQUESTED-ADDRESS-FAMILY IPv6: 440');
  const dual = await cv6.allocate({ additionalIPv6: true });
  t.equal(dual.relayedAll.length, 1, 'ADDITIONAL-ADDRESS-FAMILY without IPv6 relays: IPv4 only');
  t.same(dual.addressError, { family: 2, code: 440 }, 'with ADDRESS-ERROR-CODE 440 for IPv6');

  // SSRF: the relay-to-relay exception must not open every port of the relay address.
  await t.test('a Send indication cannot reach a non-relay port on the relay address', async (t) => {
    const c = await s.client();
    await c.allocate();
    let service = await s.peer(); // a local UDP service on the relay address, outside the relay range
    while (service.address.port >= s.minPort && service.address.port <= s.maxPort) service = await s.peer();
    // Allowed on purpose: permissions are per IP, and other relays of this server live on 127.0.0.1.
    await c.createPermission({ address: '127.0.0.1' });
    t.equal((await refusal(c.channelBind(0x4999, service.address))).code, 403, 'ChannelBind to it: 403');
    await c.send(service.address, Buffer.from('to a local service'));
    t.same(await service.collect(400), [], `Send indication to 127.0.0.1:${service.address.port} dropped`);
  });
  assertHealthy(t, s.d);
});

t.test('expiry of nonces, permissions and channels', { buffered: true }, async (t) => {
  const s = await setup(t, [
    '--allowed-peer-ip',
    '127.0.0.1',
    '--permission-lifetime',
    String(SHORT),
    '--channel-lifetime',
    String(SHORT),
    '--stale-nonce',
    String(SHORT),
  ]);

  // Nonce: learn it now, use it after it went stale.
  const cn = await s.client();
  await cn.allocate();
  const oldNonce = cn.nonce!;

  // Permission: relayed now, not after its lifetime.
  const cp = await s.client();
  const pp = await s.peer();
  const ap = await cp.allocate();
  await cp.createPermission(pp.address);
  await pp.send(Buffer.from('fresh'), relayOf(ap));
  t.equal((await cp.nextData()).data.toString(), 'fresh', 'peer packet relayed while permitted');

  // Channel: bound now; the permission is kept alive below, the channel is not refreshed.
  const cc = await s.client();
  const pc = await s.peer();
  const ac = await cc.allocate();
  await cc.channelBind(0x4444, pc.address);
  await cc.sendChannel(0x4444, Buffer.from('bound'));
  t.equal((await pc.next()).data.toString(), 'bound', 'ChannelData relayed while bound');

  const deadline = Date.now() + EXPIRY_WAIT_MS;
  while (Date.now() < deadline) {
    await cc.createPermission(pc.address);
    await sleep(400);
  }

  const raw = cn.buildRequest(Method.Refresh, (w) => w.addUint32(AttrType.Lifetime, 1200));
  const stale = await cn.request(raw);
  t.equal(stale.code, 438, `old nonce: ${describe(stale)}`);
  const fresh = readBytes(stale.view, AttrType.Nonce);
  t.ok(fresh !== undefined && !fresh.equals(oldNonce), '438 carries a new NONCE');
  t.equal(await cn.refresh(1200), 1200, 'the client retries with the new nonce and succeeds');
  t.ok(cn.staleNonceCount >= 1, `client saw ${cn.staleNonceCount} 438`);

  await pp.send(Buffer.from('late'), relayOf(ap));
  await cp.send(pp.address, Buffer.from('late send'));
  t.same(await cp.collectData(400), [], 'peer packets no longer arrive after the permission lifetime');
  t.same(await pp.collect(0), [], 'Send indications no longer relayed either');

  await cc.createPermission(pc.address); // the permission stays fresh; the channel is not touched
  await cc.sendChannel(0x4444, Buffer.from('expired channel'));
  t.same(await pc.collect(400), [], 'ChannelData on an expired channel is dropped');
  await pc.send(Buffer.from('via permission'), relayOf(ac));
  const ev = await cc.nextData();
  t.same(
    [ev.kind, ev.data.toString()],
    ['indication', 'via permission'],
    'with the channel gone but the permission alive, the peer arrives as a Data indication',
  );
  await cc.channelBind(0x4444, pc.address);
  await cc.sendChannel(0x4444, Buffer.from('rebound'));
  t.equal((await pc.next()).data.toString(), 'rebound', 'the channel can be bound again');
  assertHealthy(t, s.d);
});

t.test('allocation expiry', { buffered: true }, async (t) => {
  const s = await setup(t, ['--allowed-peer-ip', '127.0.0.1', '--max-allocate-lifetime', String(SHORT)]);
  const c = await s.client();
  const peer = await s.peer();
  const a = await c.allocate({ lifetime: 3600 });
  t.equal(a.lifetime, SHORT, 'lifetime capped at max-allocate-lifetime');
  await c.createPermission(peer.address);
  await sleep(EXPIRY_WAIT_MS);
  t.ok(await udpPortFree(a.relayed.port), 'relay port released');
  await peer.send(Buffer.from('after expiry'), relayOf(a));
  t.same(await c.collectData(300), [], 'nothing relayed after expiry');
  const e = await refusal(c.refresh(100));
  t.equal(e.code, 437, 'Refresh after expiry: 437');
  t.ok(
    s.d.lines.some((l) => l.includes('"allocation deleted"') && l.includes('"reason":"expired"')),
    'logged as expired',
  );
  assertHealthy(t, s.d);
});

t.test('quotas: user-quota 2 → 486, total-quota 3 → 508', { buffered: true }, async (t) => {
  const s = await setup(t, ['--user-quota', '2', '--total-quota', '3']);
  const [a1, a2, a3] = [await s.client(), await s.client(), await s.client()];
  await a1.allocate();
  await a2.allocate();
  const e486 = await refusal(a3.allocate());
  t.equal(e486.code, 486, 'third allocation of alice: 486');
  t.equal(e486.response.integrity, 'sha1', '486 signed');
  const [b1, b2] = [await s.client(BOB), await s.client(BOB)];
  await b1.allocate();
  const e508 = await refusal(b2.allocate());
  t.equal(e508.code, 508, 'fourth allocation in total: 508');
  t.equal(await a1.refresh(0), 0, 'alice frees one');
  const ok = await b2.allocate();
  t.ok(ok.relayed.port > 0, 'then bob gets the freed capacity');
  t.equal((await refusal(a3.allocate())).code, 508, 'alice is under her quota now, but the server is full');
  assertHealthy(t, s.d);
});

t.test('relay ports held by another process are skipped', { buffered: true }, async (t) => {
  const start = await freeUdpRange(3);
  for (const port of [start, start + 1]) {
    const p = await TestPeer.bind('127.0.0.1', port);
    t.teardown(() => p.close());
  }
  const s = await setup(t, [], { range: [start, start + 2] });
  const [c1, c2] = [await s.client(), await s.client()];
  t.equal((await c1.allocate()).relayed.port, start + 2, 'the one port nobody holds');
  t.equal((await refusal(c2.allocate())).code, 508, 'then 508, not a crash');
  assertHealthy(t, s.d);
});

t.test('relay port exhaustion: two ports, a third Allocate gets 508', { buffered: true }, async (t) => {
  const start = await freeUdpRange(2);
  const s = await setup(t, [], { range: [start, start + 1] });
  const [c1, c2, c3] = [await s.client(), await s.client(), await s.client()];
  const p1 = (await c1.allocate()).relayed.port;
  const p2 = (await c2.allocate()).relayed.port;
  t.same([p1, p2].sort(), [start, start + 1], 'both ports used');
  for (let i = 0; i < 3; i++) t.equal((await refusal(c3.allocate())).code, 508, `attempt ${i + 1}: 508`);
  t.equal((await refusal(c3.allocate({ evenPort: { reserve: true } }))).code, 508, 'EVEN-PORT: 508');
  const { view } = await udpRequest('127.0.0.1', s.d.port, bindingRequest());
  t.equal(view.cls, Class.Success, 'Binding still answered');
  await c1.refresh(0);
  t.equal((await c3.allocate()).relayed.port, p1, 'a freed port is handed out again');
  assertHealthy(t, s.d);
});

t.test(
  'allocation-default-address-family keep: the relay follows the family the client came over',
  async (t) => {
    const s = await setup(t, ['--allocation-default-address-family', 'keep'], {
      listen: ['127.0.0.1', '::1'],
    });
    const c6 = await s.client(ALICE, '::1');
    const a6 = await c6.allocate();
    t.equal(a6.relayed.address, '::1', 'a client over ::1 that names no family gets an IPv6 relay');
    const c4 = await s.client(ALICE, '127.0.0.1');
    const a4 = await c4.allocate();
    t.equal(a4.relayed.address, '127.0.0.1', 'a client over 127.0.0.1 an IPv4 one');
    assertHealthy(t, s.d);
  },
);
