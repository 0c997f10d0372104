/**
 * The relay socket pool on real loopback sockets, without a daemon: ports from the range, EVEN-PORT
 * reservations and their 30 s expiry (driven through `sweep`), ports held by other processes,
 * release on close, peer packets handed to the service, and the 1:1 NAT address maps.
 */
import t from 'tap';
import { ManualClock } from '../../src/core/clock.js';
import { RelayAddressBook } from '../../src/core/transport.js';
import { Allocation, type ClientEndpoint } from '../../src/core/turn/allocation.js';
import type { RelayRequest, RelayResult } from '../../src/core/turn/service.js';
import { type RelayAddress, RelayPool } from '../../src/io/relay-pool.js';
import { createLogger } from '../../src/log.js';
import { freeUdpRange, sleep, TestPeer, udpPortFree } from '../fixtures/helpers/turn-client.js';

const endpoint: ClientEndpoint = { transport: 'udp', send() {}, sendv() {} };
const log = createLogger('silent');

function owner(id = 1): Allocation {
  return new Allocation(id, endpoint, '127.0.0.1', 40000 + id, 'alice', 'alice', 0, 600, 'tid');
}

function request(o: Partial<RelayRequest> = {}): RelayRequest {
  return { family: 4, evenPort: false, reserveNext: false, reservationToken: undefined, ...o };
}

function allocate(pool: RelayPool, requests: RelayRequest[], a = owner()): Promise<RelayResult[]> {
  return new Promise((resolve) => pool.allocate(a, requests, resolve));
}

async function one(pool: RelayPool, r: RelayRequest = request()): Promise<RelayResult> {
  return (await allocate(pool, [r]))[0]!;
}

/** A pool over `count` ports starting at an even free port, with a fake service recording peer packets. */
async function makePool(
  count: number,
  addresses: readonly RelayAddress[] = [{ family: 4, local: '127.0.0.1', advertised: '127.0.0.1' }],
) {
  const start = await freeUdpRange(count, '127.0.0.1', true);
  const packets: Array<{ owner: number; msg: string; from: string; port: number }> = [];
  const clock = new ManualClock(Date.now());
  const pool = new RelayPool({
    addresses,
    book: new RelayAddressBook(addresses),
    minPort: start,
    maxPort: start + count - 1,
    sockBufSize: 0,
    sink: {
      fromPeer: (a: Allocation, _relay: unknown, msg: Buffer, from: string, port: number) =>
        packets.push({ owner: a.id, msg: msg.toString(), from, port }),
    },
    clock,
    log,
  });
  return { pool, start, packets, clock };
}

t.test('a relay socket relays both ways and frees its port on close', async (t) => {
  const { pool, start, packets } = await makePool(4);
  const r = await one(pool);
  t.ok(r.ok, 'allocated');
  if (!r.ok) return;
  const relay = r.relay;
  t.ok(relay.port >= start && relay.port < start + 4, 'port from the range');
  t.equal(pool.active, 1);
  const peer = await TestPeer.bind();
  t.teardown(() => peer.close());
  relay.send(Buffer.from('out'), peer.address.port, '127.0.0.1');
  const got = await peer.next();
  t.same([got.data.toString(), got.from], ['out', { address: '127.0.0.1', port: relay.port }]);
  await peer.send(Buffer.from('in'), { address: '127.0.0.1', port: relay.port });
  for (let i = 0; i < 50 && packets.length === 0; i++) await sleep(10);
  t.same(
    packets,
    [{ owner: 1, msg: 'in', from: '127.0.0.1', port: peer.address.port }],
    'peer packet to the service',
  );
  t.notOk(await udpPortFree(relay.port), 'port held');
  relay.close();
  relay.close();
  t.equal(pool.active, 0, 'closed once');
  t.ok(await udpPortFree(relay.port), 'port free at once');
});

t.test('EVEN-PORT reservations: token for port + 1, single use, expire after 30 s', async (t) => {
  const { pool, start, clock } = await makePool(2);
  const even = await one(pool, request({ evenPort: true, reserveNext: true }));
  t.ok(even.ok && even.relay.port === start, 'even port');
  const token = even.ok ? even.reservationToken : undefined;
  t.equal(token?.length, 8, 'token');
  t.notOk(await udpPortFree(start + 1), 'port + 1 is held by a bound socket: no other process can take it');
  t.equal((await one(pool)).ok, false, 'the reserved port is not handed out to others: 508');
  const odd = await one(pool, request({ reservationToken: token }));
  t.ok(odd.ok && odd.relay.port === start + 1, 'the token gets port + 1');
  t.equal((await one(pool, request({ reservationToken: token }))).ok, false, 'once');
  if (odd.ok) odd.relay.close();
  if (even.ok) even.relay.close();

  // A new reservation, left to expire: the sweep frees port + 1 and the token stops working.
  const again = await one(pool, request({ evenPort: true, reserveNext: true }));
  const token2 = again.ok ? again.reservationToken : undefined;
  clock.advance(29_000);
  pool.sweep();
  t.equal((await one(pool)).ok, false, 'still reserved after 29 s');
  t.notOk(await udpPortFree(start + 1), 'still held');
  clock.advance(2_000);
  pool.sweep();
  t.ok(await udpPortFree(start + 1), 'expired: the holding socket is closed');
  t.equal((await one(pool, request({ reservationToken: token2 }))).ok, false, 'expired token: 508');
  const plain = await one(pool);
  t.ok(plain.ok && plain.relay.port === start + 1, 'port + 1 is free again');
  if (plain.ok) plain.relay.close();
  if (again.ok) again.relay.close();
});

t.test(
  'EVEN-PORT when port + 1 is held by another process: another pair; shutdown frees reservations',
  async (t) => {
    const { pool, start } = await makePool(4);
    const holder = await TestPeer.bind('127.0.0.1', start + 1);
    const r = await one(pool, request({ evenPort: true, reserveNext: true }));
    t.ok(r.ok && r.relay.port === start + 2, 'the pair whose odd port is free');
    t.ok(await udpPortFree(start), 'the even port of the refused pair was let go');
    await holder.close();
    t.notOk(await udpPortFree(start + 3), 'its port + 1 is held');
    pool.closeReservations();
    t.ok(await udpPortFree(start + 3), 'closeReservations frees it');
    if (r.ok) {
      t.equal((await one(pool, request({ reservationToken: r.reservationToken }))).ok, false, 'token gone');
      r.relay.close();
    }
  },
);

t.test('ports held by another process are skipped until the minute sweep', async (t) => {
  const { pool, start, clock } = await makePool(2);
  const holder = await TestPeer.bind('127.0.0.1', start);
  const r = await one(pool);
  t.ok(r.ok && r.relay.port === start + 1, 'the free one');
  t.equal((await one(pool)).ok, false, 'then 508, no throw');
  await holder.close();
  t.equal((await one(pool)).ok, false, 'the busy mark stays until the sweep');
  clock.advance(59_000);
  pool.sweep(); // 59 s later: marks kept
  t.equal((await one(pool)).ok, false);
  clock.advance(1_500);
  pool.sweep(); // a minute has passed (the tick need not fall on a whole minute): marks cleared
  const after = await one(pool);
  t.ok(after.ok && after.relay.port === start, 'retried after the sweep');
  if (after.ok) after.relay.close();
  if (r.ok) r.relay.close();
});

t.test('one relay per requested family; supports() per family; 1:1 NAT address maps', async (t) => {
  const { pool } = await makePool(4, [
    { family: 4, local: '127.0.0.1', advertised: '192.0.2.10' },
    { family: 6, local: '::1', advertised: '::1' },
  ]);
  t.ok(pool.supports(4) && pool.supports(6));
  t.ok(
    pool.isOwnRelayAddress('192.0.2.10') &&
      pool.isOwnRelayAddress('127.0.0.1') &&
      pool.isOwnRelayAddress('::1'),
  );
  t.equal(pool.localAddressFor('192.0.2.10'), '127.0.0.1');
  t.equal(pool.advertisedAddressFor('127.0.0.1'), '192.0.2.10');
  t.equal(pool.localAddressFor('::1'), undefined, 'no mapping for an address that is its own');
  const [v4, v6] = await allocate(pool, [request(), request({ family: 6 })]);
  t.ok(
    v4?.ok &&
      v4.relay.family === 4 &&
      v4.relay.advertisedAddress === '192.0.2.10' &&
      v4.relay.localAddress === '127.0.0.1',
  );
  t.ok(v6?.ok && v6.relay.family === 6 && v6.relay.localAddress === '::1');
  if (v4?.ok) v4.relay.close();
  if (v6?.ok) v6.relay.close();
  const only4Addresses: RelayAddress[] = [{ family: 4, local: '127.0.0.1', advertised: '127.0.0.1' }];
  const only4 = new RelayPool({
    addresses: only4Addresses,
    book: new RelayAddressBook(only4Addresses),
    minPort: 40000,
    maxPort: 40001,
    sockBufSize: 0,
    sink: { fromPeer: () => {} },
    clock: new ManualClock(Date.now()),
    log,
  });
  t.notOk(only4.supports(6), 'no IPv6 relay address');
});
