/**
 * Fleet mode acceptance, three nodes and one real Redis:
 *  - a user with a fleet quota of 3 gets 3 allocations spread over the nodes, and the 4th gets 486
 *    on any node; releasing one frees a slot on every node;
 *  - `kill -9` of a node holding an allocation: its quota slot comes back within the lease time;
 *  - a REST user id revoked through node A's admin API is refused by node B within 1 s, and its
 *    live allocation on B is deleted;
 *  - GET /admin/fleet shows the three nodes' heartbeats.
 */
import t from 'tap';
import { assertHealthy, refusalCode } from '../fixtures/helpers/assertions.js';
import { FLEET_SECRET, type FleetNode, startFleetNode, waitFor } from '../fixtures/helpers/fleet.js';
import { sample } from '../fixtures/helpers/prometheus.js';
import { redisSkip, startRedis } from '../fixtures/helpers/redis.js';
import { restCredentials } from '../fixtures/helpers/turn-client.js';

const LEASE_SEC = 3;

t.test('three nodes, one Redis', { skip: redisSkip }, async (t) => {
  const redis = await startRedis(t);
  const args = ['--fleet-user-quota', '3', '--fleet-lease-time', String(LEASE_SEC)];
  const [a, b, c] = (await Promise.all(
    ['node-a', 'node-b', 'node-c'].map((id) => startFleetNode(t, redis, id, args)),
  )) as [FleetNode, FleetNode, FleetNode];
  const creds = () => restCredentials(FLEET_SECRET, 'carol', 600);

  t.test('GET /admin/fleet lists every node', async (t) => {
    const seen = await waitFor(async () => {
      for (const n of [a, b, c]) {
        const view = JSON.parse((await n.get('/admin/fleet')).body) as { nodes: { id: string }[] };
        if (view.nodes.length !== 3) return false;
      }
      return true;
    }, 5000);
    t.ok(seen >= 0, 'every node sees three nodes');
    const view = JSON.parse((await b.get('/admin/fleet')).body) as {
      node: string;
      redis: { up: boolean };
      nodes: Array<Record<string, unknown>>;
    };
    t.equal(view.node, 'node-b');
    t.equal(view.redis.up, true);
    t.same(view.nodes.map((n) => n['id']).sort(), ['node-a', 'node-b', 'node-c']);
    t.match(view.nodes[0], {
      id: 'node-b',
      address: '127.0.0.1',
      port: b.d.port,
      allocations: Number,
      pps: Number,
      bps: Number,
      cpu: Number,
      draining: false,
    });
    t.equal((await a.get('/admin/fleet')).status, 200);
    t.equal((await fetch(`http://127.0.0.1:${a.httpPort}/admin/fleet`)).status, 401, 'behind the token');
    t.equal(sample(await c.metrics(), 'turn_fleet_redis_up'), 1);
  });

  t.test('fleet quota 3: three allocations over three nodes, the 4th is 486 anywhere', async (t) => {
    const onA = await a.client(creds());
    const onB = await b.client(creds());
    const onC = await c.client(creds());
    await onA.allocate();
    await onB.allocate();
    await onC.allocate();
    t.pass('three allocations, one per node');
    for (const n of [a, b, c]) {
      const extra = await n.client(creds());
      t.equal(await refusalCode(extra.allocate()), 486, `the 4th on ${n.id} is 486`);
    }
    t.equal(
      await refusalCode((await a.client(restCredentials(FLEET_SECRET, 'dave', 600))).allocate()),
      'accepted',
      'another user id is not affected',
    );

    // Releasing one (on B) frees a slot on every node: A takes it, then C is refused again. The
    // lease goes to Redis right after B answers the Refresh, so A may need a few milliseconds.
    await onB.refresh(0);
    const again = await a.client(creds());
    const freed = await waitFor(async () => (await refusalCode(again.allocate())) === 'accepted', 1000);
    t.ok(freed >= 0, `the released slot is taken on another node (after ${freed} ms)`);
    t.equal(await refusalCode((await c.client(creds())).allocate()), 486, 'and the quota holds again');
    t.match(sample(await a.metrics(), 'turn_fleet_quota_checks_total', 'result="refused"'), Number);
    await Promise.all([onA.refresh(0), onC.refresh(0), again.refresh(0)]);
  });

  t.test('kill -9 of a node: its slots come back within the lease time', async (t) => {
    const held = [await a.client(creds()), await a.client(creds()), await c.client(creds())];
    for (const h of held) await h.allocate();
    t.equal(await refusalCode((await b.client(creds())).allocate()), 486, 'quota used up');
    c.d.proc.kill('SIGKILL');
    await c.d.exited();
    const killedAt = Date.now();
    let tries = 0;
    const took = await waitFor(
      async () => {
        tries++;
        return (await refusalCode((await b.client(creds())).allocate())) === 'accepted';
      },
      (LEASE_SEC + 2) * 1000,
    );
    const elapsed = Date.now() - killedAt;
    t.ok(took >= 0, `a slot came back after ${elapsed} ms (${tries} tries)`);
    t.ok(elapsed <= LEASE_SEC * 1000 + 500, `within the lease time (${LEASE_SEC} s) plus one try`);
    const nodes = await waitFor(async () => {
      const view = JSON.parse((await a.get('/admin/fleet')).body) as { nodes: { id: string }[] };
      return !view.nodes.some((n) => n.id === 'node-c');
    }, 8000);
    t.ok(nodes >= 0, 'the dead node leaves the fleet view once its heartbeat expires');
    for (const h of held.slice(0, 2)) await h.refresh(0);
  });

  t.test('revoke on A: B refuses within 1 s and its live allocations go', async (t) => {
    const victim = () => restCredentials(FLEET_SECRET, 'mallory', 600);
    const live = await b.client(victim());
    await live.allocate();
    const listB = async (): Promise<string[]> =>
      (
        JSON.parse((await b.get('/admin/allocations')).body) as { allocations: { user: string }[] }
      ).allocations.map((x) => x.user);
    t.ok((await listB()).includes('mallory'), 'mallory holds an allocation on B');
    const until = Math.floor(Date.now() / 1000) + 300;
    const revokedAt = Date.now();
    t.match((await a.post('/admin/revoke', { userid: 'mallory', until })).json, { userid: 'mallory', until });
    const refused = await waitFor(
      async () => (await refusalCode((await b.client(victim())).allocate())) === 401,
      1000,
    );
    t.ok(refused >= 0, `B refuses mallory ${Date.now() - revokedAt} ms after the revocation on A`);
    t.ok(Date.now() - revokedAt <= 1000, 'within 1 s');
    t.notOk((await listB()).includes('mallory'), "mallory's allocation on B is gone");
    t.equal(await refusalCode(live.refresh(600)), 401, 'its requests on B are refused');
    const revocations = JSON.parse((await b.get('/admin/revocations')).body) as { revocations: unknown[] };
    t.same(revocations.revocations, [{ userid: 'mallory', until }], 'B lists the revocation');
    // Lifted on B: A accepts again.
    await b.post('/admin/unrevoke', { userid: 'mallory' });
    const lifted = await waitFor(
      async () => (await refusalCode((await a.client(victim())).allocate())) === 'accepted',
      1000,
    );
    t.ok(lifted >= 0, 'an unrevoke on B applies on A');
  });

  t.test('nodes stay healthy', async (t) => {
    assertHealthy(t, a.d);
    assertHealthy(t, b.d);
  });
});
