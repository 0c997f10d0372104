/**
 * Fuzzing the TURN side of a running daemon: 100 000 mutated authenticated requests (Allocate,
 * Refresh, CreatePermission, ChannelBind) derived from a real session, plus Send indications and
 * 20 000 ChannelData frames with random channel numbers and lengths, sent at a bounded pace from
 * four sockets that hold allocations. Mutations:
 *  - structure-aware: random attribute values (peers, channels, lifetimes, families, tokens,
 *    unknown attributes) and byte flips inside the method's attributes, then signed, so the
 *    handlers themselves see them;
 *  - flipped bytes after signing (integrity, fingerprint, header);
 *  - truncation, with and without the header length fixed up;
 *  - flipped message-type bits before signing (other methods and classes).
 * Afterwards the daemon must answer Binding, give a fresh client a working relay, have logged no
 * error, written nothing to stderr, and stayed within a memory bound.
 *
 * Loopback only: the one allowed peer is 127.0.0.2, and every other address is refused by
 * `--denied-peer-ip 0.0.0.0/0 --denied-peer-ip ::/0` (checked before fuzzing), so mutated peer
 * addresses cannot make the relay send anywhere else. (This server's own relay range on 127.0.0.1
 * stays reachable relay to relay, by design.)
 */
import { randomBytes } from 'node:crypto';
import t from 'tap';
import { AttrType, Class, Family, Method, Transport } from '../../src/core/constants.js';
import { readErrorCode } from '../../src/core/stun/attrs.js';
import { decodeStun } from '../../src/core/stun/decode.js';
import { StunWriter } from '../../src/core/stun/encode.js';
import { assertHealthy, refusalCode } from '../fixtures/helpers/assertions.js';
import { aliceOnLoopback, startDaemon } from '../fixtures/helpers/daemon.js';
import { Rng } from '../fixtures/helpers/random.js';
import { bindingRequest, udpRequest } from '../fixtures/helpers/stun-client.js';
import {
  freeUdpRange,
  rssKiB,
  signRaw,
  sleep,
  TestPeer,
  TurnClient,
} from '../fixtures/helpers/turn-client.js';

const REQUESTS = 100_000;
const WARMUP = 10_000;
const CHANNEL_FRAMES = 20_000;
const SOCKETS = 4;
/** Datagrams per burst and the pause after it: about 20 000 datagrams a second. */
const BURST = 100;
const PAUSE_MS = 5;
const REALM = 'example.test';
const ALICE = { username: 'alice', password: 'wonderland', realm: REALM };
const PEER_IP = '127.0.0.2';

const METHODS = [Method.Allocate, Method.Refresh, Method.CreatePermission, Method.ChannelBind] as const;
/** Peer addresses a structure-aware mutation picks from; all but PEER_IP (and our relays) are refused. */
const PEER_IPS = [
  PEER_IP,
  PEER_IP,
  '127.0.0.1',
  '10.0.0.1',
  '::1',
  '::ffff:127.0.0.2',
  '64:ff9b::a00:1',
  '0.0.0.0',
];
const LIFETIMES = [0, 1, 2, 599, 600, 3600, 0xffffffff];

interface Fuzzer {
  client: TurnClient;
  /** USERNAME, REALM, NONCE attributes of this socket's session, appended before signing. */
  tail: Buffer;
  key: Buffer;
  responses: Map<string, number>;
  responseBytes: number;
}

function credentialTail(c: TurnClient): Buffer {
  const w = new StunWriter().start(Method.Binding, Class.Request, Buffer.alloc(12));
  w.addString(AttrType.Username, ALICE.username);
  w.addString(AttrType.Realm, c.realm!);
  w.addBytes(AttrType.Nonce, c.nonce!);
  return w.finish().subarray(20);
}

/** Random values for the method's own attributes, as a client might (mis)send them. */
function methodAttributes(rng: Rng, w: StunWriter, method: number, peerPort: number): void {
  const peer = (): void => {
    const ip = rng.pick(PEER_IPS);
    w.addAddress(AttrType.XorPeerAddress, ip, rng.int(3) === 0 ? rng.int(65536) : peerPort, true);
  };
  switch (method) {
    case Method.Allocate:
      if (rng.int(8) !== 0)
        w.addLeadingByte(AttrType.RequestedTransport, rng.int(8) ? Transport.UDP : rng.int(256));
      if (rng.int(2)) w.addUint32(AttrType.Lifetime, rng.pick(LIFETIMES));
      if (rng.int(6) === 0) w.addEvenPort(rng.int(2) === 0);
      if (rng.int(8) === 0) w.addLeadingByte(AttrType.RequestedAddressFamily, rng.int(4));
      if (rng.int(8) === 0) w.addLeadingByte(AttrType.AdditionalAddressFamily, rng.int(4));
      if (rng.int(10) === 0) w.addBytes(AttrType.ReservationToken, rng.bytes(rng.int(3) ? 8 : rng.int(16)));
      if (rng.int(12) === 0) w.addFlag(AttrType.DontFragment);
      break;
    case Method.Refresh:
      if (rng.int(4)) w.addUint32(AttrType.Lifetime, rng.int(2) ? rng.pick(LIFETIMES) : rng.next());
      if (rng.int(6) === 0)
        w.addLeadingByte(AttrType.RequestedAddressFamily, rng.int(2) ? Family.IPv6 : rng.int(4));
      break;
    case Method.CreatePermission: {
      const n = rng.int(4);
      for (let i = 0; i < n; i++) peer();
      break;
    }
    default: {
      // ChannelBind: valid, boundary and random channel numbers.
      if (rng.int(8) !== 0) w.addChannelNumber(rng.int(2) ? 0x4000 + rng.int(0x1000) : rng.int(0x10000));
      if (rng.int(8) !== 0) peer();
      if (rng.int(10) === 0) peer();
      break;
    }
  }
  // Now and then an attribute the server does not know (comprehension-optional or -required).
  if (rng.int(10) === 0)
    w.addBytes(rng.int(2) ? 0x8000 | rng.int(0x7fff) : 0x0040 + rng.int(0x100), rng.bytes(rng.int(12)));
  if (rng.int(20) === 0) w.addBytes(AttrType.Data, rng.bytes(rng.int(40)));
}

/** One mutated authenticated request for fuzzer `f`. */
function mutatedRequest(rng: Rng, f: Fuzzer, peerPort: number): Buffer {
  const method = rng.pick(METHODS);
  const w = new StunWriter(2048).start(method, Class.Request, rng.bytes(12));
  methodAttributes(rng, w, method, peerPort);
  const head = w.finish();
  const mode = rng.int(20);
  if (mode < 8) {
    // Structure-aware, flips inside the method's attributes, then signed: handlers see it.
    const flips = head.length > 20 ? rng.int(3) : 0;
    for (let k = 0; k < flips; k++) head[20 + rng.int(head.length - 20)] = rng.next() & 0xff;
    return signRaw(Buffer.concat([head, f.tail]), f.key);
  }
  if (mode < 10) {
    // Another method or class under a valid signature.
    head[0] = rng.int(4);
    head[1] = rng.next() & 0xff;
    return signRaw(Buffer.concat([head, f.tail]), f.key);
  }
  const signed = signRaw(Buffer.concat([head, f.tail]), f.key);
  if (mode < 16) {
    // Signed, then damaged.
    const flips = 1 + rng.int(4);
    for (let k = 0; k < flips; k++) signed[rng.int(signed.length)] = rng.next() & 0xff;
    return signed;
  }
  // Truncated, the length field fixed up half of the time (so the cut reaches the decoder's checks).
  const cut = signed.subarray(0, 1 + rng.int(signed.length - 1));
  const out = Buffer.from(cut);
  if (rng.int(2) && out.length >= 20) out.writeUInt16BE((out.length - 20) & 0xfffc, 2);
  return out;
}

function sendIndication(rng: Rng, peerPort: number): Buffer {
  const w = new StunWriter(512).start(Method.Send, Class.Indication, rng.bytes(12));
  if (rng.int(8))
    w.addAddress(AttrType.XorPeerAddress, rng.pick(PEER_IPS), rng.int(4) ? peerPort : rng.int(65536), true);
  if (rng.int(8)) w.addBytes(AttrType.Data, rng.bytes(rng.int(200)));
  if (rng.int(16) === 0) w.addFlag(AttrType.DontFragment);
  const b = w.finish();
  if (rng.int(4) === 0) b[rng.int(b.length)] = rng.next() & 0xff;
  return b;
}

function channelData(rng: Rng): Buffer {
  const roll = rng.int(4);
  const channel = roll < 2 ? 0x4000 : roll === 2 ? 0x4000 + rng.int(0x1000) : rng.int(0x10000);
  const data = rng.bytes(rng.int(300));
  const b = Buffer.alloc(4 + data.length + (rng.int(4) === 0 ? rng.int(4) : 0));
  b.writeUInt16BE(channel, 0);
  b.writeUInt16BE(rng.int(2) ? data.length : rng.int(0x10000), 2);
  data.copy(b, 4);
  return b;
}

/** Sends `count` datagrams from `gen(i)`, round-robin over the fuzzers, BURST at a time. */
async function blast(
  fuzzers: Fuzzer[],
  port: number,
  count: number,
  gen: (f: Fuzzer, i: number) => Buffer,
): Promise<number> {
  let bytes = 0;
  for (let i = 0; i < count; i += BURST) {
    const sends: Promise<void>[] = [];
    for (let k = i; k < Math.min(count, i + BURST); k++) {
      const f = fuzzers[k % fuzzers.length]!;
      const b = gen(f, k);
      bytes += b.length;
      sends.push(f.client.sendRaw(b, port));
    }
    await Promise.all(sends);
    await sleep(PAUSE_MS);
  }
  return bytes;
}

t.test('TURN fuzzing: the daemon survives, keeps relaying, memory stays bounded', async (t) => {
  const relayStart = await freeUdpRange(1);
  const d = await startDaemon([
    ...aliceOnLoopback(REALM),
    '--allowed-peer-ip',
    PEER_IP,
    '--denied-peer-ip',
    '0.0.0.0/0',
    '--denied-peer-ip',
    '::/0',
    '--min-port',
    String(relayStart),
    '--max-port',
    String(relayStart + 63),
  ]);
  t.teardown(() => d.stop());
  const pid = d.proc.pid!;
  const rng = new Rng(0x7e57f022);
  const peer = await TestPeer.bind(PEER_IP);
  t.teardown(() => peer.close());
  const peerPort = peer.address.port;

  // A real session per socket: allocation, permission, channel; its nonce and key sign the fuzz.
  const fuzzers: Fuzzer[] = [];
  for (let i = 0; i < SOCKETS; i++) {
    const client = await TurnClient.connect('127.0.0.1', d.port, ALICE);
    t.teardown(() => client.close());
    await client.allocate();
    await client.createPermission(peer.address);
    await client.channelBind(0x4000, peer.address);
    const f: Fuzzer = {
      client,
      tail: credentialTail(client),
      key: client.key(),
      responses: new Map(),
      responseBytes: 0,
    };
    client.socket.on('message', (m: Buffer) => {
      f.responseBytes += m.length;
      const v = decodeStun(m);
      const kind = !v.ok
        ? m[0]! >= 0x40 && m[0]! < 0x50
          ? 'ChannelData'
          : 'undecodable'
        : v.view.cls === Class.Error
          ? `error ${readErrorCode(v.view)?.code ?? '?'}`
          : v.view.cls === Class.Success
            ? 'success'
            : v.view.method === Method.Data
              ? 'Data indication'
              : 'other';
      f.responses.set(kind, (f.responses.get(kind) ?? 0) + 1);
    });
    fuzzers.push(f);
  }
  // The deny-all list holds: a public address is refused (so no mutation can leave loopback).
  const publicPeer = await refusalCode(fuzzers[0]!.client.createPermission({ address: '8.8.8.8' }));
  if (!t.equal(publicPeer, 403, 'public peer refused: the fuzz stays on loopback')) return;

  const gen = (f: Fuzzer, i: number): Buffer =>
    i % 20 === 19 ? sendIndication(rng, peerPort) : mutatedRequest(rng, f, peerPort);
  const started = Date.now();
  let sentBytes = await blast(fuzzers, d.port, WARMUP, gen);
  await sleep(500);
  const warmRss = await rssKiB(pid);
  sentBytes += await blast(fuzzers, d.port, REQUESTS - WARMUP, gen);
  // Every 20th datagram above was a Send indication: top up so that REQUESTS requests went out.
  sentBytes += await blast(fuzzers, d.port, REQUESTS / 20, (f) => mutatedRequest(rng, f, peerPort));
  sentBytes += await blast(fuzzers, d.port, CHANNEL_FRAMES, () => channelData(rng));
  const elapsed = Date.now() - started;
  await sleep(1000);
  const afterRss = await rssKiB(pid);

  const totals = new Map<string, number>();
  for (const f of fuzzers) for (const [k, v] of f.responses) totals.set(k, (totals.get(k) ?? 0) + v);
  t.comment(
    `sent ${REQUESTS} mutated requests + ${REQUESTS / 20} Send indications + ${CHANNEL_FRAMES} ChannelData ` +
      `(${(sentBytes / 1e6).toFixed(1)} MB) in ${elapsed} ms`,
  );
  t.comment(`answers: ${JSON.stringify(Object.fromEntries([...totals].sort()))}`);
  t.comment(
    `daemon RSS: warm-up ${(warmRss / 1024).toFixed(1)} MiB, after ${(afterRss / 1024).toFixed(1)} MiB`,
  );
  t.equal(totals.get('undecodable') ?? 0, 0, 'every datagram back is STUN or ChannelData');
  t.ok((totals.get('success') ?? 0) > 100, 'mutated requests reached the handlers and some succeeded');
  // Bound: the fuzz keeps at most 64 allocations (relay range), 8192 cached responses and a few
  // thousand permissions/channels, a few MiB; V8's heap growth under load is the rest. Twice the
  // warm-up RSS leaves room for GC timing while catching any per-request leak (100 000 requests
  // that each kept even 1 KiB would add ~100 MiB).
  t.ok(warmRss > 0 && afterRss < 2 * warmRss, `RSS ${afterRss} KiB < 2 × ${warmRss} KiB`);

  // Still serving: Binding, and a fresh client relays both ways.
  const { view } = await udpRequest('127.0.0.1', d.port, bindingRequest());
  t.equal(view.cls, Class.Success, 'Binding answered');
  const fresh = await TurnClient.connect('127.0.0.1', d.port, ALICE);
  t.teardown(() => fresh.close());
  const a = await fresh.allocate();
  await fresh.channelBind(0x4123, peer.address);
  await peer.collect(200); // drop what the fuzz relayed to the peer
  const out = randomBytes(64);
  await fresh.sendChannel(0x4123, out);
  t.same((await peer.next()).data, out, 'fresh client → peer');
  await peer.send(Buffer.from('back'), { address: a.relayed.address, port: a.relayed.port });
  t.same(
    await fresh.nextData(),
    { kind: 'channel', channel: 0x4123, data: Buffer.from('back') },
    'peer → fresh client',
  );

  assertHealthy(t, d);
  t.equal(await d.stop(), 0, 'clean exit');
});
