/**
 * Usage accounting in the Redis Stream: interim records every `fleet-usage-interim` seconds while an
 * allocation lives (totals so far, `seq` counting up), then its `stop` record; and a node started
 * while Redis is down starts anyway, serves, and delivers what it recorded once Redis comes up; the
 * Redis password comes from a file (TURNPIKE_REDIS_PASSWORD_FILE), and a wrong one is logged with
 * the reason, never with the password.
 */

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { assertHealthy, refusalCode } from '../fixtures/helpers/assertions.js';
import { testDir } from '../fixtures/helpers/certificates.js';
import { aliceOnLoopback, freePort, startDaemon } from '../fixtures/helpers/daemon.js';
import { FLEET_SECRET, startFleetNode, waitFor } from '../fixtures/helpers/fleet.js';
import { sample } from '../fixtures/helpers/prometheus.js';
import { readStream, redisSkip, startRedis, type TestRedis } from '../fixtures/helpers/redis.js';
import { restCredentials, TestPeer } from '../fixtures/helpers/turn-client.js';

const usage = (redis: TestRedis) => readStream(redis, 'turnpike:usage');

t.test('interim records, then the stop record', { skip: redisSkip }, async (t) => {
  const redis = await startRedis(t);
  const node = await startFleetNode(t, redis, 'node-u', ['--fleet-usage-interim', '1']);
  const peer = await TestPeer.bind('127.0.0.1');
  t.teardown(() => peer.close());
  const c = await node.client(restCredentials(FLEET_SECRET, 'ivy#meeting-3', 600));
  const a = await c.allocate();
  await c.createPermission(peer.address);
  let sent = 0;
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < 5; i++, sent++) await c.send(peer.address, Buffer.alloc(100, i));
    for (let i = 0; i < 5; i++) await peer.next(2000);
    await new Promise((r) => setTimeout(r, 1100));
  }
  await peer.send(Buffer.from('back'), { address: a.relayed.address, port: a.relayed.port });
  await c.nextData(2000);
  await c.refresh(0);
  const done = await waitFor(async () => (await usage(redis)).some((r) => r['kind'] === 'stop'), 3000);
  t.ok(done >= 0, 'the stop record arrives');
  const records = (await usage(redis)).filter((r) => r['userid'] === 'ivy');
  const interim = records.filter((r) => r['kind'] === 'interim');
  t.ok(interim.length >= 2, `${interim.length} interim records for a ~3.5 s allocation, one a second`);
  t.same(
    records.map((r) => Number(r['seq'])),
    records.map((_, i) => i + 1),
    'seq counts up, the stop record last',
  );
  t.equal(records.at(-1)?.['kind'], 'stop');
  const toPeer = records.map((r) => Number(r['packetsToPeer']));
  t.same(
    toPeer,
    [...toPeer].sort((x, y) => x - y),
    'totals so far: never decreasing',
  );
  t.match(records.at(-1), {
    node: 'node-u',
    tag: 'meeting-3',
    packetsToPeer: String(sent),
    bytesToPeer: String(sent * 100),
    packetsToClient: '1',
    bytesToClient: '4',
    end: /^\d+$/,
  });
  t.ok(
    interim.every((r) => r['end'] === ''),
    'interim records have no end',
  );
  const metrics = await node.metrics();
  t.equal(sample(metrics, 'turn_fleet_usage_records_written_total'), records.length);
  t.notMatch(metrics, /ivy|meeting-3/, 'no user, user id or tag in the metrics');
  assertHealthy(t, node.d);
});

t.test('a node started while Redis is down', { skip: redisSkip }, async (t) => {
  const redis = await startRedis(t);
  await redis.stop();
  const started = Date.now();
  const node = await startFleetNode(t, redis, 'node-late');
  t.ok(Date.now() - started < 10_000, `it starts without Redis (${Date.now() - started} ms)`);
  t.ok(
    node.d.lines.some((l) => l.includes('Redis is not reachable yet')),
    'and says so',
  );
  const view = JSON.parse((await node.get('/admin/fleet')).body) as { redis: { up: boolean } };
  t.equal(view.redis.up, false);
  const c = await node.client(restCredentials(FLEET_SECRET, 'early', 600));
  await c.allocate();
  await c.refresh(0);
  t.pass('it serves (static REST secret, quota off)');
  await redis.start();
  const up = await waitFor(async () => sample(await node.metrics(), 'turn_fleet_redis_up') === 1, 15_000);
  t.ok(up >= 0, `it connects once Redis is up (after ${up} ms)`);
  const delivered = await waitFor(
    async () => (await usage(redis)).some((r) => r['userid'] === 'early'),
    3000,
  );
  t.ok(delivered >= 0, 'and writes the usage record it kept');
  // Its subscriptions were made while Redis was away: keyspace notifications (and revocations) work.
  await redis.cli('SET', 'turn/realm/example.test/user/late/password', 'comer');
  const c2 = await node.client({ username: 'late', password: 'comer' });
  const live = await waitFor(async () => (await refusalCode(c2.allocate())) === 'accepted', 2000);
  t.ok(live >= 0, `a user added in Redis now applies at once (after ${live} ms; the poll is 10 s)`);
  assertHealthy(t, node.d);
});

t.test('a Redis password from TURNPIKE_REDIS_PASSWORD_FILE', { skip: redisSkip }, async (t) => {
  const redis = await startRedis(t, { password: 'redis-pass-e2e' });
  const dir = testDir(t);
  const good = join(dir, 'good');
  const bad = join(dir, 'bad');
  writeFileSync(good, 'redis-pass-e2e\n');
  writeFileSync(bad, 'wrong\n');
  const ok = await startDaemon(
    [
      ...aliceOnLoopback(),
      '--redis-url',
      redis.url,
      '--prometheus',
      '--prometheus-port',
      String(await freePort()),
    ],
    { env: { TURNPIKE_REDIS_PASSWORD_FILE: good } },
  );
  t.teardown(() => ok.stop());
  t.ok(
    ok.lines.some((l) => l.includes('fleet: connected to Redis')),
    'the right password connects',
  );
  const wrong = await startDaemon([...aliceOnLoopback(), '--redis-url', redis.url], {
    env: { TURNPIKE_REDIS_PASSWORD_FILE: bad },
  });
  t.teardown(() => wrong.stop());
  const warned = wrong.lines.find((l) => l.includes('cannot reach Redis'));
  t.match(warned, /WRONGPASS|invalid username-password/, 'a wrong one is logged with the reason');
  t.notMatch(wrong.lines.join('\n'), /redis-pass-e2e|"wrong"/, 'never the password itself');
  t.equal(wrong.proc.exitCode, null, 'and the node runs on (local users)');
  t.equal(wrong.stderr(), '');
});
