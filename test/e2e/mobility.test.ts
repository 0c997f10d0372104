/**
 * RFC 8016 mobility against the daemon over real UDP sockets on loopback, in the data plane this
 * run uses (CI runs the suite on the native plane, then with TURNPIKE_DATA_PLANE=js): a client
 * streams to a peer and the peer to it at a fixed rate, moves to a new local socket mid-stream with
 * a Refresh carrying its MOBILITY-TICKET, and loses no more than the packets in flight; the old
 * 5-tuple is served no more (its ChannelData is not relayed, its requests get 437, peer data goes
 * to the new one); replayed and forged tickets get 405 and change nothing; without `mobility`
 * nothing is mobile. With two native threads, the move lands once on the thread that owns the
 * allocation and once on the other one (the allocation and its relay socket change threads).
 */
import t, { type Test } from 'tap';
import { AttrType, Method } from '../../src/core/constants.js';
import { readBytes } from '../../src/core/stun/attrs.js';
import { loadNativeAddon } from '../../src/io/native/addon.js';
import { aliceOnLoopback, freePort, metricsArgs, startDaemon } from '../fixtures/helpers/daemon.js';
import { byLabel, sample, scrape } from '../fixtures/helpers/prometheus.js';
import {
  addUdpTransport,
  sleep,
  TestPeer,
  TurnClient,
  type TurnCredentials,
  TurnRequestError,
  type TurnResponse,
} from '../fixtures/helpers/turn-client.js';
import { StreamTurnClient } from '../fixtures/helpers/turn-stream-client.js';

const ALICE: TurnCredentials = { username: 'alice', password: 'wonderland', realm: 'example.test' };
const plane = process.env['TURNPIKE_DATA_PLANE'] === 'js' || 'error' in loadNativeAddon() ? 'js' : 'native';
const CHANNEL = 0x4000;
/** The stream: one datagram each way every INTERVAL_MS, for STREAM_MS before and after the move. */
const INTERVAL_MS = 4;
const STREAM_MS = 400;

function ticketOf(r: TurnResponse): Buffer {
  const v = readBytes(r.view, AttrType.MobilityTicket);
  if (v === undefined) throw new Error('no MOBILITY-TICKET in the response');
  return Buffer.from(v);
}

/** The ERROR-CODE a transaction fails with (undefined: it succeeded). */
async function errorCode(p: Promise<unknown>): Promise<number | undefined> {
  try {
    const r = await p;
    // `transact` resolves with error responses; the TURN methods throw them.
    if (typeof r === 'object' && r !== null && 'ok' in r && r.ok === false) return (r as TurnResponse).code;
    return undefined;
  } catch (e) {
    if (e instanceof TurnRequestError) return e.code;
    throw e;
  }
}

const refreshWith = (c: TurnClient, ticket: Buffer, lifetime?: number): Promise<TurnResponse> =>
  c.transact(Method.Refresh, (w) => {
    if (lifetime !== undefined) w.addUint32(AttrType.Lifetime, lifetime);
    w.addBytes(AttrType.MobilityTicket, ticket);
  });

async function mobileDaemon(t: Test, extra: string[] = []) {
  const http = await freePort();
  const d = await startDaemon(
    [
      ...aliceOnLoopback(),
      '--allowed-peer-ip',
      '127.0.0.1',
      '--relay-threads',
      '2',
      ...metricsArgs(http),
      ...extra,
    ],
    { env: { TURNPIKE_DATA_PLANE: plane } },
  );
  t.teardown(() => d.stop());
  return { d, http };
}

/** The native thread whose socket a client's datagrams reach (a Binding answered by the thread). */
async function threadOf(c: TurnClient, http: number): Promise<string> {
  const before = byLabel(await scrape(http), 'turn_data_plane_packets_total', 'thread');
  await c.request(c.buildRequest(Method.Binding, () => {}, { credentials: false }));
  const after = byLabel(await scrape(http), 'turn_data_plane_packets_total', 'thread');
  for (const [thread, n] of after) if (n > (before.get(thread) ?? 0)) return thread;
  throw new Error('no thread counted the Binding request');
}

/** A fresh client socket on the thread `want` (or not on it, with `other`); several tries. */
async function clientOnThread(
  t: Test,
  port: number,
  http: number,
  want: string,
  other: boolean,
): Promise<TurnClient> {
  for (let i = 0; i < 40; i++) {
    const c = await TurnClient.connect('127.0.0.1', port, ALICE);
    const thread = await threadOf(c, http);
    if ((thread === want) !== other) return c;
    await c.close();
  }
  t.fail(`no socket hashed ${other ? 'away from' : 'to'} thread ${want} in 40 tries`);
  throw new Error('unreachable');
}

interface StreamResult {
  sentToPeer: number;
  lostToPeer: number;
  /** Client datagrams lost that were sent on the old socket while the move was outstanding. */
  lostInFlight: number;
  /** Client datagrams sent on the old socket while the move was outstanding (the ones in flight). */
  inFlight: number;
  sentToClient: number;
  lostToClient: number;
  /** Peer datagrams that reached the old socket after the move was answered. */
  oldAfterMove: number;
}

/**
 * Streams both ways at a fixed rate through `from`, moves to `to` (a Refresh with `ticket` from
 * it) and streams on through `to`. The client keeps sending on the old socket until the move is
 * answered, as a client that does not know yet: those datagrams are the ones in flight, the only
 * ones the move may lose. Datagrams carry a sequence number; losses are counted at the end.
 */
async function streamAndMove(
  from: TurnClient,
  to: TurnClient,
  peer: TestPeer,
  relay: { address: string; port: number },
  ticket: Buffer,
): Promise<StreamResult & { reply: TurnResponse }> {
  const toPeer = new Set<number>();
  const toClient = new Set<number>();
  let movedAtSeq = Number.POSITIVE_INFINITY;
  let oldAfterMove = 0;
  peer.onPacket = (p) => toPeer.add(p.data.readUInt32BE(0));
  const offFrom = from.onData((e) => {
    const seq = e.data.readUInt32BE(0);
    toClient.add(seq);
    if (seq > movedAtSeq + 10) oldAfterMove++;
  });
  const offTo = to.onData((e) => toClient.add(e.data.readUInt32BE(0)));
  let current = from;
  let c2p = 0;
  let p2c = 0;
  let stop = false;
  const peerLoop = (async () => {
    while (!stop) {
      const b = Buffer.alloc(64);
      b.writeUInt32BE(p2c++, 0);
      await peer.send(b, relay);
      await sleep(INTERVAL_MS);
    }
  })();
  const clientLoop = (async () => {
    while (!stop) {
      const b = Buffer.alloc(64);
      b.writeUInt32BE(c2p++, 0);
      await current.sendChannel(CHANNEL, b);
      await sleep(INTERVAL_MS);
    }
  })();
  await sleep(STREAM_MS);
  const moveFrom = c2p;
  const reply = await refreshWith(to, ticket);
  current = to;
  const moveTo = c2p;
  movedAtSeq = p2c;
  await sleep(STREAM_MS);
  stop = true;
  await Promise.all([peerLoop, clientLoop]);
  await sleep(300); // the last datagrams arrive
  peer.onPacket = undefined;
  offFrom();
  offTo();
  let lostInFlight = 0;
  for (let seq = moveFrom; seq < moveTo; seq++) if (!toPeer.has(seq)) lostInFlight++;
  return {
    reply,
    sentToPeer: c2p,
    lostToPeer: c2p - toPeer.size,
    lostInFlight,
    inFlight: moveTo - moveFrom,
    sentToClient: p2c,
    lostToClient: p2c - toClient.size,
    oldAfterMove,
  };
}

async function mobileSession(port: number, peer: TestPeer, first?: TurnClient) {
  const a = first ?? (await TurnClient.connect('127.0.0.1', port, ALICE));
  const r = await a.transact(Method.Allocate, (w) => {
    addUdpTransport(w);
    w.addBytes(AttrType.MobilityTicket, Buffer.alloc(0));
  });
  const relayed = readRelayed(r);
  await a.channelBind(CHANNEL, peer.address);
  return { a, ticket: ticketOf(r), relay: relayed };
}

function readRelayed(r: TurnResponse): { address: string; port: number } {
  // XOR-RELAYED-ADDRESS on loopback: the relay's port is what the peer needs (the address is 127.0.0.1).
  const v = readBytes(r.view, AttrType.XorRelayedAddress);
  if (v === undefined || v.length < 8) throw new Error('no XOR-RELAYED-ADDRESS');
  return { address: '127.0.0.1', port: v.readUInt16BE(2) ^ 0x2112 };
}

const cases =
  plane === 'native'
    ? [
        { name: 'to a socket on the same thread', other: false },
        { name: 'to a socket on the other thread', other: true },
      ]
    : [{ name: 'to a new socket', other: false }];

for (const { name, other } of cases) {
  t.test(`${plane} data plane: a move mid-stream ${name} loses only what was in flight`, async (t) => {
    const { d, http } = await mobileDaemon(t, ['--mobility']);
    const peer = await TestPeer.bind('127.0.0.1');
    t.teardown(() => peer.close());
    const first = await TurnClient.connect('127.0.0.1', d.port, ALICE);
    t.teardown(() => first.close());
    let second: TurnClient;
    let there = '';
    if (plane === 'native') {
      const home = await threadOf(first, http);
      second = await clientOnThread(t, d.port, http, home, other);
      there = await threadOf(second, http);
      t.equal(there === home, !other, `old socket on thread ${home}, new one on thread ${there}`);
    } else second = await TurnClient.connect('127.0.0.1', d.port, ALICE);
    t.teardown(() => second.close());
    const { a, ticket, relay } = await mobileSession(d.port, peer, first);
    // The peer's permission: its first datagram to the relay must pass, so the client sends first.
    await a.sendChannel(CHANNEL, Buffer.alloc(64, 0xff));
    await peer.next(2000);

    const s = await streamAndMove(a, second, peer, relay, ticket);
    t.ok(s.reply.ok, 'the move succeeded');
    await peer.collect(50); // what the stream left queued
    t.comment(
      `client→peer: ${s.sentToPeer} sent, ${s.lostToPeer} lost (${s.inFlight} sent on the old socket during the move, ${s.lostInFlight} of them lost); ` +
        `peer→client: ${s.sentToClient} sent, ${s.lostToClient} lost`,
    );
    t.ok(s.sentToPeer > 100 && s.sentToClient > 100, 'both streams ran');
    t.equal(
      s.lostToPeer,
      s.lostInFlight,
      'client→peer: nothing lost but datagrams in flight during the move',
    );
    t.ok(s.lostToPeer <= 2, `client→peer lost ${s.lostToPeer}`);
    t.ok(s.lostToClient <= 2, `peer→client lost ${s.lostToClient} (at most the datagrams in flight)`);
    t.equal(s.oldAfterMove, 0, 'no peer data reached the old socket after the move');
    const next = ticketOf(s.reply);
    t.not(next.toString('hex'), ticket.toString('hex'), 'the move answered with a new ticket');

    // The old 5-tuple is served no more: its ChannelData is not relayed, its requests get 437.
    await a.sendChannel(CHANNEL, Buffer.from('old path'));
    const stray = await peer.collect(300);
    t.same(
      stray.map((p) => p.data.toString()),
      [],
      'ChannelData from the old 5-tuple is not relayed',
    );
    t.equal(await errorCode(a.refresh(600)), 437, 'a Refresh from the old 5-tuple: 437');
    // The new one relays both ways.
    await second.sendChannel(CHANNEL, Buffer.from('new path'));
    t.equal((await peer.next(2000)).data.toString(), 'new path');
    second.clearData();
    await peer.send(Buffer.from('to the new path'), relay);
    t.equal((await second.nextData(2000)).data.toString(), 'to the new path');
    if (plane === 'native') {
      // The thread of the new 5-tuple relays both ways itself (the allocation and its relay socket
      // are its own now): nothing goes through the control plane.
      const before = await scrape(http);
      for (let k = 0; k < 10; k++) {
        await second.sendChannel(CHANNEL, Buffer.from(`c${k}`));
        await peer.send(Buffer.from(`p${k}`), relay);
      }
      t.equal((await peer.collect(300)).length, 10, 'the peer got the 10');
      t.equal((await second.collectData(100)).length, 10, 'the client got the 10');
      const after = await scrape(http);
      const relayed = (x: string) => byLabel(x, 'turn_data_plane_relayed_packets_total', 'thread');
      const up = (x: string) => byLabel(x, 'turn_data_plane_upcalls_total', 'thread');
      t.equal(
        (relayed(after).get(there) ?? 0) - (relayed(before).get(there) ?? 0),
        20,
        `thread ${there} relayed all 20`,
      );
      const upcalls = [...up(after)].reduce((n, [k, v]) => n + v - (up(before).get(k) ?? 0), 0);
      t.equal(upcalls, 0, 'nothing was handed up to JavaScript');
    }

    const text = await scrape(http);
    t.equal(sample(text, 'turn_mobility_moves_total'), 1);
    t.ok(
      d.lines.some(
        (l) =>
          l.includes('allocation moved (RFC 8016 mobility)') &&
          l.includes(`"from":"udp:127.0.0.1:${a.localPort}"`) &&
          l.includes(`"client":"udp:127.0.0.1:${second.localPort}"`) &&
          l.includes('"user":"alice"'),
      ),
      'the move is logged with the user, the old and the new client',
    );
  });
}

t.test(`${plane} data plane: replayed and forged tickets get 405 and change nothing`, async (t) => {
  const { d, http } = await mobileDaemon(t, ['--mobility']);
  const peer = await TestPeer.bind('127.0.0.1');
  t.teardown(() => peer.close());
  const { a, ticket, relay } = await mobileSession(d.port, peer);
  t.teardown(() => a.close());
  const b = await TurnClient.connect('127.0.0.1', d.port, ALICE);
  t.teardown(() => b.close());
  const current = ticketOf(await refreshWith(b, ticket));
  // The allocation now serves b. Replays of the used ticket, from a third socket and from the old one:
  const c = await TurnClient.connect('127.0.0.1', d.port, ALICE);
  t.teardown(() => c.close());
  t.equal(await errorCode(refreshWith(c, ticket)), 405, 'the used ticket replayed from a new socket: 405');
  t.equal(await errorCode(refreshWith(a, ticket)), 405, 'the used ticket replayed from the old socket: 405');
  const forged = Buffer.from(current);
  forged[forged.length - 1]! ^= 0x01;
  t.equal(await errorCode(refreshWith(c, forged)), 405, 'a forged ticket: 405');
  t.equal(await errorCode(refreshWith(c, Buffer.alloc(current.length, 7))), 405, 'random bytes: 405');
  // Nothing changed: b still relays both ways, c does not.
  await b.sendChannel(CHANNEL, Buffer.from('still b'));
  t.equal((await peer.next(2000)).data.toString(), 'still b');
  await c.sendChannel(CHANNEL, Buffer.from('not c'));
  await peer.send(Buffer.from('for b'), relay);
  t.equal((await b.nextData(2000)).data.toString(), 'for b');
  t.same(
    (await peer.collect(200)).map((p) => p.data.toString()),
    [],
    'ChannelData from the refused socket is not relayed',
  );
  t.same(await c.collectData(100), [], 'the refused socket receives nothing');
  const text = await scrape(http);
  t.equal(sample(text, 'turn_mobility_moves_total'), 1);
  const refused = byLabel(text, 'turn_mobility_refused_total', 'reason');
  t.equal(refused.get('stale'), 2, 'the replays: stale');
  t.equal(refused.get('invalid'), 2, 'the forgeries: invalid');
  // The current ticket still moves it.
  t.equal(await errorCode(refreshWith(c, current)), undefined, 'the current ticket moves it to c');
});

t.test(`${plane} data plane: mobility off: no ticket, and asking for one gets 405`, async (t) => {
  const { d, http } = await mobileDaemon(t);
  const a = await TurnClient.connect('127.0.0.1', d.port, ALICE);
  t.teardown(() => a.close());
  t.equal(
    await errorCode(
      a.transact(Method.Allocate, (w) => {
        addUdpTransport(w);
        w.addBytes(AttrType.MobilityTicket, Buffer.alloc(0));
      }),
    ),
    405,
    'an Allocate with MOBILITY-TICKET: 405 Mobility Forbidden',
  );
  const plain = await a.allocate();
  t.equal(readBytes(plain.response.view, AttrType.MobilityTicket), undefined, 'no ticket in the Allocate');
  const b = await TurnClient.connect('127.0.0.1', d.port, ALICE);
  t.teardown(() => b.close());
  t.equal(await errorCode(refreshWith(b, Buffer.alloc(32, 1))), 405, 'a Refresh with a ticket: 405');
  t.equal(await a.refresh(600), 600, 'the allocation is where it was');
  const text = await scrape(http);
  t.equal(byLabel(text, 'turn_mobility_refused_total', 'reason').get('disabled'), 2);
  t.equal(sample(text, 'turn_mobility_moves_total'), 0);
});

t.test(
  'TCP: an allocation moves to a new connection; the old one then idles out, the allocation lives on',
  async (t) => {
    const { d, http } = await mobileDaemon(t, ['--mobility', '--tcp-idle-timeout', '1']);
    const peer = await TestPeer.bind('127.0.0.1');
    t.teardown(() => peer.close());
    const open = () =>
      StreamTurnClient.connect({
        host: '127.0.0.1',
        port: d.port,
        username: 'alice',
        password: 'wonderland',
      });
    const a = await open();
    t.teardown(() => a.close());
    const r = await a.request(Method.Allocate, (w) => {
      addUdpTransport(w);
      w.addBytes(AttrType.MobilityTicket, Buffer.alloc(0));
    });
    t.ok(r.ok, 'mobile allocation over TCP');
    const relay = readRelayed(r);
    await a.channelBind(CHANNEL, peer.address);
    const b = await open();
    t.teardown(() => b.close());
    const moved = await b.request(Method.Refresh, (w) => w.addBytes(AttrType.MobilityTicket, ticketOf(r)));
    t.ok(moved.ok, 'moved to the new connection');
    b.sendChannel(CHANNEL, Buffer.from('over b'));
    t.equal((await peer.next(2000)).data.toString(), 'over b');
    a.sendChannel(CHANNEL, Buffer.from('over a'));
    t.same((await peer.collect(200)).length, 0, 'the old connection relays nothing');
    // The old connection holds no allocation any more: the idle timeout (1 s) closes it.
    let closed = false;
    void a.closed.then(() => {
      closed = true;
    });
    for (let waited = 0; !closed && waited < 5000; waited += 50) await sleep(50);
    t.ok(closed, 'the server closed the old, idle connection');
    await peer.send(Buffer.from('to b'), relay);
    await b.waitReceived(1);
    t.equal(b.received[0]?.toString(), 'to b', 'the allocation lives on, on the new connection');
    const again = await b.request(Method.Refresh, (w) => w.addUint32(AttrType.Lifetime, 600));
    t.ok(again.ok, 'and refreshes there');
    t.equal(sample(await scrape(http), 'turn_mobility_moves_total'), 1);
  },
);
