/**
 * Redis goes away mid-test (killed), then comes back on the same port:
 *  - relaying on existing allocations continues, and local authentication goes on;
 *  - the quota check follows `fleet-quota-on-error`: `allow` admits (node A), `deny` answers 508
 *    (node B); once Redis is back, A's allocations are counted against the fleet quota again;
 *  - `/readyz` answers 503 while Redis is away (`fleet-readyz-redis`), 200 after;
 *  - usage records of allocations that ended meanwhile are delivered once Redis is back: nothing is
 *    lost within the buffer bound (A); past it (node C, `fleet-usage-buffer 2`) the oldest are
 *    dropped, counted and logged;
 *  - no node crashes or logs an error.
 */
import t from 'tap';
import { assertHealthy, refusalCode } from '../fixtures/helpers/assertions.js';
import { FLEET_SECRET, startFleetNode, waitFor } from '../fixtures/helpers/fleet.js';
import { sample } from '../fixtures/helpers/prometheus.js';
import { readStream, redisSkip, startRedis } from '../fixtures/helpers/redis.js';
import { restCredentials, TestPeer } from '../fixtures/helpers/turn-client.js';

t.test('Redis down and back', { skip: redisSkip }, async (t) => {
  const redis = await startRedis(t);
  const quota = ['--fleet-user-quota', '2', '--fleet-lease-time', '3', '--redis-timeout', '300'];
  const a = await startFleetNode(t, redis, 'node-a', [
    ...quota,
    '--fleet-quota-on-error',
    'allow',
    '--fleet-readyz-redis',
  ]);
  const b = await startFleetNode(t, redis, 'node-b', [...quota, '--fleet-quota-on-error', 'deny']);
  const c = await startFleetNode(t, redis, 'node-c', [...quota, '--fleet-usage-buffer', '2']);
  const readyz = async (): Promise<number> => (await fetch(`http://127.0.0.1:${a.httpPort}/readyz`)).status;
  t.equal(await readyz(), 200, 'A is ready');

  // A live allocation relaying to a peer.
  const peer = await TestPeer.bind('127.0.0.1');
  t.teardown(() => peer.close());
  // A REST username with a tag after '#' (the application's call id): in the usage record, not the quota key.
  const talker = await a.client(restCredentials(FLEET_SECRET, 'talker#call-42', 600));
  const alloc = await talker.allocate();
  const relay = { address: alloc.relayed.address, port: alloc.relayed.port };
  await talker.createPermission(peer.address);
  await talker.channelBind(0x4001, peer.address);
  const roundTrip = async (text: string): Promise<boolean> => {
    await talker.sendChannel(0x4001, Buffer.from(text));
    const got = await peer.next(2000);
    await peer.send(Buffer.from(`re:${text}`), relay);
    const back = await talker.nextData(2000);
    return got.data.toString() === text && back.data.toString() === `re:${text}`;
  };
  t.ok(await roundTrip('before'), 'relaying with Redis up');

  await redis.stop();
  const down = await waitFor(async () => sample(await a.metrics(), 'turn_fleet_redis_up') === 0, 5000);
  t.ok(down >= 0, 'A notices Redis is gone');
  t.equal(await readyz(), 503, '/readyz 503 while Redis is away (fleet-readyz-redis)');
  t.equal((await fetch(`http://127.0.0.1:${b.httpPort}/readyz`)).status, 200, 'B has no such option: ready');

  t.ok(await roundTrip('during'), 'relaying continues without Redis');
  const creds = () => restCredentials(FLEET_SECRET, 'gina', 600);
  const ginas = [await a.client(creds()), await a.client(creds()), await a.client(creds())];
  for (const g of ginas)
    t.equal(await refusalCode(g.allocate()), 'accepted', 'allow: A admits (local authentication goes on)');
  t.equal(await refusalCode((await b.client(creds())).allocate()), 508, 'deny: B answers 508');
  t.match(sample(await a.metrics(), 'turn_fleet_quota_checks_total', 'result="error_allowed"'), 3);
  t.match(sample(await b.metrics(), 'turn_fleet_quota_checks_total', 'result="error_denied"'), 1);

  // Allocations end while Redis is away: their usage records wait.
  await ginas[0]!.refresh(0);
  await talker.refresh(0);
  const onC = [];
  for (let i = 0; i < 3; i++) {
    const x = await c.client(restCredentials(FLEET_SECRET, `c-user-${i}`, 600));
    await x.allocate();
    onC.push(x);
  }
  for (const x of onC) await x.refresh(0);
  const buffered = await waitFor(
    async () => sample(await a.metrics(), 'turn_fleet_usage_records_buffered') === 2,
    3000,
  );
  t.ok(buffered >= 0, 'A holds the two records in its buffer');
  t.equal(
    sample(await c.metrics(), 'turn_fleet_usage_records_dropped_total'),
    1,
    'C (buffer 2) dropped the oldest of 3',
  );
  const dropLogged = await waitFor(() => c.d.lines.some((l) => l.includes('usage records dropped')), 3000);
  t.ok(dropLogged >= 0, 'and logged it');

  await redis.start();
  const up = await waitFor(async () => sample(await a.metrics(), 'turn_fleet_redis_up') === 1, 15000);
  t.ok(up >= 0, `A reconnects (backoff) after ${up} ms`);
  t.equal(await readyz(), 200, '/readyz 200 again');

  const records = () => readStream(redis, 'turnpike:usage');
  const delivered = await waitFor(async () => {
    const list = await records();
    const from = (node: string): number => list.filter((r) => r['node'] === node).length;
    return from('node-a') >= 2 && from('node-c') >= 2;
  }, 5000);
  t.ok(delivered >= 0, 'the buffered records of A and C are delivered after Redis is back');
  const list = await records();
  const fromA = list.filter((r) => r['node'] === 'node-a');
  t.same(fromA.map((r) => r['userid']).sort(), ['gina', 'talker'], 'both, nothing lost within the bound');
  const talked = fromA.find((r) => r['userid'] === 'talker');
  t.match(talked, {
    kind: 'stop',
    reason: 'refreshed-to-zero',
    user: /^\d+:talker#call-42$/,
    tag: 'call-42',
    transport: 'udp',
    client: /^127\.0\.0\.1:\d+$/,
    relay: `127.0.0.1:${relay.port}`,
  });
  t.ok(
    Number(talked?.['packetsToPeer']) >= 2 && Number(talked?.['packetsToClient']) >= 2,
    'with the traffic of both directions',
  );
  t.ok(Number(talked?.['end']) >= Number(talked?.['start']), 'start and end times');
  const fromC = list
    .filter((r) => r['node'] === 'node-c')
    .map((r) => r['userid'])
    .sort();
  t.same(fromC, ['c-user-1', 'c-user-2'], 'C delivers what its bound kept (the newest two)');
  t.equal(sample(await a.metrics(), 'turn_fleet_usage_records_buffered'), 0, "A's buffer is empty");

  // A's two live allocations of gina are leased again (renewal re-adds them): the fleet quota holds.
  const held = await waitFor(async () => (await redis.cli('ZCARD', 'turnpike:quota:gina')) === '2', 5000);
  t.ok(
    held >= 0,
    "A's allocations admitted during the outage count against the fleet quota once Redis is back",
  );
  const bUp = await waitFor(async () => sample(await b.metrics(), 'turn_fleet_redis_up') === 1, 15000);
  t.ok(bUp >= 0, 'B is reconnected too');
  t.equal(await refusalCode((await b.client(creds())).allocate()), 486, 'so a third one on B is refused');

  for (const n of [a, b, c]) assertHealthy(t, n.d);
});
