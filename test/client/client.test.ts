/**
 * The client library against a real turnpike daemon on loopback: the credential dance, the TURN
 * methods and data both ways over UDP and over TCP; the typed failures (error responses, a silent
 * server, an unreachable port, a refused connection).
 */
import { createSocket } from 'node:dgram';
import t, { type Test } from 'tap';
import {
  buildBindingRequest,
  type ClientTransport,
  type DataEvent,
  Inbox,
  readMappedAddress,
  StreamTransport,
  TransactionError,
  TransportError,
  TurnClient,
  type TurnClientOptions,
  TurnRequestError,
  UdpPeer,
  UdpTransport,
} from '../../src/client/index.js';
import { Method } from '../../src/core/constants.js';
import { type Daemon, freePort, startDaemon } from '../fixtures/helpers/daemon.js';

const REALM = 'example.test';
const ALICE = { username: 'alice', password: 'wonderland' };

async function daemon(t: Test): Promise<Daemon> {
  const d = await startDaemon([
    '--listening-ip',
    '127.0.0.1',
    '--realm',
    REALM,
    '--user',
    'alice:wonderland',
    '--allowed-peer-ip',
    '127.0.0.1',
  ]);
  t.teardown(() => d.stop());
  return d;
}

function client(
  t: Test,
  transport: ClientTransport,
  o: TurnClientOptions = { credentials: ALICE },
): TurnClient {
  const c = new TurnClient(transport, {
    retransmit: { rtoMs: 100, transmissions: 5, lastWaitFactor: 4 },
    ...o,
  });
  t.teardown(() => c.close());
  return c;
}

async function peer(t: Test): Promise<UdpPeer> {
  const p = await UdpPeer.bind('127.0.0.1');
  t.teardown(() => p.close());
  return p;
}

/** Data events from the client, with timed waits. */
function inbox(c: TurnClient): Inbox<DataEvent> {
  const box = new Inbox<DataEvent>();
  c.onData((e) => box.push(e));
  return box;
}

t.test('against turnpike', async (t) => {
  const d = await daemon(t);

  for (const kind of ['udp', 'tcp'] as const) {
    t.test(`${kind}: Allocate after the 401, permission, channel, data both ways, release`, async (t) => {
      const transport =
        kind === 'udp'
          ? await UdpTransport.open({ address: '127.0.0.1', port: d.port, connect: true })
          : await StreamTransport.open({ kind: 'tcp', address: '127.0.0.1', port: d.port, timeoutMs: 2000 });
      const c = client(t, transport, { credentials: { ...ALICE, realm: REALM }, fingerprint: true });
      const p = await peer(t);
      const data = inbox(c);

      const mapped = readMappedAddress((await c.binding()).view);
      t.same(
        mapped,
        { family: 1, address: '127.0.0.1', port: transport.localPort },
        'Binding: mapped address',
      );
      const a = await c.allocate({ lifetime: 900 });
      t.equal(c.auth?.realm, REALM, 'realm learnt from the 401');
      // Counted from the request: 899 when the relay bind ends in the next second.
      t.ok(a.lifetimeSec === 900 || a.lifetimeSec === 899, `lifetime ${a.lifetimeSec} s`);
      t.equal(a.relayed.address, '127.0.0.1');
      t.equal(a.response.integrity, 'sha1', 'success verified with the long-term key');
      await c.createPermission(p.address);
      await c.channelBind(0x4000, p.address);

      c.sendChannelData(0x4000, Buffer.from('to the peer'));
      const got = await p.next();
      t.same(
        [got.data.toString(), got.from],
        ['to the peer', { address: a.relayed.address, port: a.relayed.port }],
      );
      await p.send(Buffer.from('back'), a.relayed);
      t.same(await data.next(2000), { kind: 'channel', channel: 0x4000, data: Buffer.from('back') });

      const p2 = await peer(t);
      await c.createPermission(p2.address);
      c.send(p2.address, Buffer.from('indication'));
      t.equal((await p2.next()).data.toString(), 'indication', 'Send indication relayed');
      await p2.send(Buffer.from('data'), a.relayed);
      t.same(await data.next(2000), {
        kind: 'indication',
        peer: { family: 1, ...p2.address },
        data: Buffer.from('data'),
      });

      t.equal(await c.refresh(0), 0, 'released');
      const gone = await c.refresh(600).catch((e: unknown) => e);
      t.ok(
        gone instanceof TurnRequestError && gone.code === 437 && gone.method === Method.Refresh,
        '437 after',
      );
      t.equal(c.strays, 0);
    });
  }

  t.test('SHA-256 with USERHASH, and a 438 answered with the fresh nonce', async (t) => {
    const transport = await UdpTransport.open({
      address: '127.0.0.1',
      port: d.port,
      localAddress: '127.0.0.1',
    });
    const c = client(t, transport, { credentials: { ...ALICE, sha256: true, userhash: true } });
    const a = await c.allocate();
    t.equal(a.response.integrity, 'sha256');
    t.ok(c.auth?.usesSha256);
    c.auth!.nonce = Buffer.from('obMatJos2AAACf//499k954d6OL34oL9FSTvy64sA'); // not the server's
    t.equal(await c.refresh(700), 700, 'refreshed after the 438');
    t.equal(c.staleNonces, 1);
  });

  t.test('error responses and the value-level API', async (t) => {
    const transport = await UdpTransport.open({ address: '127.0.0.1', port: d.port, connect: true });
    const bad = client(t, transport, { credentials: { username: 'alice', password: 'nope' } });
    const e = await bad.allocate().catch((err: unknown) => err);
    t.ok(e instanceof TurnRequestError, 'TurnRequestError');
    t.match(e, { code: 401, message: 'Allocate failed: 401', response: { ok: false, code: 401 } });
    t.match(await bad.transact(Method.Allocate), { kind: 'response', response: { code: 401 } }, 'as a value');

    const good = client(t, await UdpTransport.open({ address: '127.0.0.1', port: d.port, connect: true }));
    const o = await good.transact(Method.Allocate);
    t.match(
      o,
      { kind: 'response', response: { code: 400, integrity: 'sha1' } },
      'no REQUESTED-TRANSPORT: 400',
    );

    const anon = await UdpTransport.open({ address: '127.0.0.1', port: d.port, connect: true });
    const none = client(t, anon, {});
    const unsigned = await none.transact(Method.Allocate, (w) => w.addLeadingByte(0x0019, 17));
    t.match(
      unsigned,
      { kind: 'response', response: { code: 401 } },
      'without credentials the 401 is the answer',
    );
    t.equal(none.auth, undefined);
  });
});

t.test('a silent server: retransmitted Rc times, then TransactionError', async (t) => {
  const sink = createSocket('udp4');
  await new Promise<void>((resolve) => sink.bind(0, '127.0.0.1', resolve));
  let received = 0;
  sink.on('message', () => received++);
  t.teardown(() => sink.close());
  const transport = await UdpTransport.open({
    address: '127.0.0.1',
    port: sink.address().port,
    connect: true,
  });
  const c = client(t, transport, { retransmit: { rtoMs: 20, transmissions: 4, lastWaitFactor: 2 } });
  const e = await c.binding().catch((err: unknown) => err);
  t.ok(e instanceof TransactionError);
  t.match(e, { kind: 'timeout', code: 'ETIMEDOUT', transmissions: 4 });
  t.equal(received, 4, 'four datagrams reached the server');
  t.equal(c.retransmissions, 3);
  t.match(await c.exchange(Buffer.alloc(20)), { kind: 'timeout' }, 'exchange reports it as a value');
});

t.test('nothing listening: ICMP unreachable over UDP, refused over TCP', async (t) => {
  const port = await freePort();
  const udp = await UdpTransport.open({ address: '127.0.0.1', port, connect: true });
  const c = client(t, udp, { retransmit: { rtoMs: 50, transmissions: 5, lastWaitFactor: 4 } });
  t.match(await c.exchange(buildBindingRequest()), { kind: 'error', code: 'ECONNREFUSED' });
  t.match(await c.exchange(buildBindingRequest()), { kind: 'error', code: 'ECONNREFUSED' }, 'sticky');
  const refused = await StreamTransport.open({ kind: 'tcp', address: '127.0.0.1', port }).catch(
    (e: unknown) => e,
  );
  t.ok(refused instanceof TransportError);
  t.match(refused, { code: 'ECONNREFUSED' });
  await c.close();
  t.match(await c.exchange(buildBindingRequest()), { kind: 'error' }, 'closed');
});
