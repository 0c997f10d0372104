/**
 * A coturn-layout user database (coturn's turndb/schema.userdb.redis), written with `redis-cli`,
 * authenticates on turnpike: users by HMAC key and by clear-text password, REST secrets, and the
 * realm's user-quota (as the fleet quota). Adding and removing a user or a secret in Redis takes
 * effect live, without SIGHUP: at once with keyspace notifications, within `redis-userdb-poll`
 * without them. Static users from the configuration keep working beside them.
 */
import { createHash } from 'node:crypto';
import t, { type Test } from 'tap';
import { assertHealthy, refusalCode } from '../fixtures/helpers/assertions.js';
import { aliceOnLoopback, type Daemon, freePort, startDaemon } from '../fixtures/helpers/daemon.js';
import { waitFor } from '../fixtures/helpers/fleet.js';
import { redisSkip, startRedis, type TestRedis } from '../fixtures/helpers/redis.js';
import { restCredentials, TurnClient } from '../fixtures/helpers/turn-client.js';

const REALM = 'north.gov';
const md5 = (s: string): string => createHash('md5').update(s).digest('hex');

async function node(t: Test, redis: TestRedis, args: string[] = []): Promise<Daemon> {
  const d = await startDaemon([
    ...aliceOnLoopback(REALM),
    '--use-auth-secret',
    '--redis-url',
    redis.url,
    ...args,
  ]);
  t.teardown(() => d.stop());
  return d;
}

/** What an Allocate with these credentials gets ('accepted' or the error code); the allocation is released. */
async function tryAllocate(t: Test, d: Daemon, username: string, password: string): Promise<number | string> {
  const c = await TurnClient.connect('127.0.0.1', d.port, { username, password, realm: REALM });
  t.teardown(() => c.close());
  const code = await refusalCode(c.allocate());
  if (code === 'accepted') await c.refresh(0);
  return code;
}

t.test('coturn layout: keys, passwords, secrets, quota; live changes', { skip: redisSkip }, async (t) => {
  const redis = await startRedis(t);
  // What coturn's turnadmin writes (the key is MD5(user:realm:password), in hex).
  await redis.cli(
    'SET',
    `turn/realm/${REALM}/user/ninefingers/key`,
    md5(`ninefingers:${REALM}:youhavetoberealistic`),
  );
  await redis.cli('SET', `turn/realm/${REALM}/user/gorst/password`, 'hero');
  await redis.cli('SET', `turn/realm/${REALM}/secret/1368426581`, 'logen');
  await redis.cli('SET', `turn/realm/crinna.org/user/whirrun/password`, 'sword');
  const d = await node(t, redis);

  t.equal(await tryAllocate(t, d, 'ninefingers', 'youhavetoberealistic'), 'accepted', 'a user by HMAC key');
  t.equal(await tryAllocate(t, d, 'gorst', 'hero'), 'accepted', 'a user by clear-text password');
  t.equal(await tryAllocate(t, d, 'gorst', 'villain'), 401, 'a wrong password is refused');
  t.equal(await tryAllocate(t, d, 'whirrun', 'sword'), 401, "another realm's user is not ours");
  const rest = restCredentials('logen', 'app-user', 600);
  t.equal(
    await tryAllocate(t, d, rest.username, rest.password),
    'accepted',
    'REST credentials under a secret from Redis',
  );
  t.equal(
    await tryAllocate(t, d, 'alice', 'wonderland'),
    'accepted',
    'a static user of the configuration beside them',
  );

  // Live: add a user, then remove one, then a secret; no SIGHUP.
  await redis.cli('SET', `turn/realm/${REALM}/user/logen/password`, 'bloody-nine');
  let took = await waitFor(
    async () => (await tryAllocate(t, d, 'logen', 'bloody-nine')) === 'accepted',
    2000,
  );
  t.ok(took >= 0, `a user added with redis-cli authenticates (after ${took} ms)`);
  await redis.cli('DEL', `turn/realm/${REALM}/user/gorst/password`);
  took = await waitFor(async () => (await tryAllocate(t, d, 'gorst', 'hero')) === 401, 2000);
  t.ok(took >= 0, `a user deleted with redis-cli is refused (after ${took} ms)`);
  await redis.cli('SET', `turn/realm/${REALM}/secret/2`, 'rotated');
  const rotated = restCredentials('rotated', 'app-user', 600);
  took = await waitFor(
    async () => (await tryAllocate(t, d, rotated.username, rotated.password)) === 'accepted',
    2000,
  );
  t.ok(took >= 0, `a secret added is accepted (after ${took} ms)`);
  await redis.cli('DEL', `turn/realm/${REALM}/secret/1368426581`);
  took = await waitFor(async () => (await tryAllocate(t, d, rest.username, rest.password)) === 401, 2000);
  t.ok(took >= 0, `a secret removed no longer verifies (after ${took} ms)`);

  // The realm's user-quota is the fleet-wide per-user quota.
  await redis.cli('SET', `turn/realm/${REALM}/user-quota`, '1');
  const quota = restCredentials('rotated', 'quota-user', 600);
  const first = await TurnClient.connect('127.0.0.1', d.port, { ...quota, realm: REALM });
  t.teardown(() => first.close());
  took = await waitFor(async () => {
    if ((await refusalCode(first.allocate())) !== 'accepted') return false;
    const second = await TurnClient.connect('127.0.0.1', d.port, { ...quota, realm: REALM });
    t.teardown(() => second.close());
    const code = await refusalCode(second.allocate());
    if (code === 'accepted') await Promise.all([first.refresh(0), second.refresh(0)]);
    return code === 486;
  }, 2000);
  t.ok(took >= 0, "the realm's user-quota from Redis applies");
  assertHealthy(t, d);
});

t.test('without keyspace notifications: polling applies changes', { skip: redisSkip }, async (t) => {
  const redis = await startRedis(t, { keyspaceEvents: '' });
  const d = await node(t, redis, ['--redis-userdb-poll', '1']);
  t.equal(await tryAllocate(t, d, 'gorst', 'hero'), 401, 'unknown at first');
  const setAt = Date.now();
  await redis.cli('SET', `turn/realm/${REALM}/user/gorst/password`, 'hero');
  const took = await waitFor(async () => (await tryAllocate(t, d, 'gorst', 'hero')) === 'accepted', 3000);
  t.ok(took >= 0, `picked up by polling after ${Date.now() - setAt} ms`);
  t.ok(Date.now() - setAt <= 2500, 'within the poll interval (1 s) and a read');
});

t.test(
  '/ice-servers signs with a secret from Redis when none is configured',
  { skip: redisSkip },
  async (t) => {
    const redis = await startRedis(t);
    await redis.cli('SET', `turn/realm/${REALM}/secret/1`, 'from-redis');
    const httpPort = await freePort();
    const d = await node(t, redis, [
      '--prometheus',
      '--prometheus-port',
      String(httpPort),
      '--api-token',
      'tok-e2e-fleet',
    ]);
    const r = await fetch(`http://127.0.0.1:${httpPort}/ice-servers?userid=webapp&tag=room-1&ttl=600`, {
      headers: { authorization: 'Bearer tok-e2e-fleet' },
    });
    t.equal(r.status, 200);
    const body = (await r.json()) as { iceServers: { username?: string; credential?: string }[] };
    const turn = body.iceServers.find((s) => s.username !== undefined);
    t.match(turn?.username, /^\d+:webapp#room-1$/, 'a REST username with the tag');
    t.equal(await tryAllocate(t, d, turn!.username!, turn!.credential!), 'accepted', 'and it authenticates');
  },
);
