/**
 * Load-aware ALTERNATE-SERVER (RFC 8489 §10, RFC 8656): node A over its load threshold
 * (`fleet-max-allocations 1`) or draining answers new Allocates with 300 Try Alternate carrying node
 * B's address (the least-loaded healthy node, from the Redis registry), and a real client follows
 * it: coturn's `turnutils_uclient` is sent to A, ends up on B and relays through it without loss.
 * `fleet-readyz-capacity` makes A's /readyz answer 503 while it is over its threshold.
 */
import t from 'tap';
import { AttrType } from '../../src/core/constants.js';
import { readAddress } from '../../src/core/stun/attrs.js';
import { assertHealthy, refusal } from '../fixtures/helpers/assertions.js';
import { FLEET_SECRET, startFleetNode, waitFor } from '../fixtures/helpers/fleet.js';
import { sample } from '../fixtures/helpers/prometheus.js';
import { redisSkip, startRedis } from '../fixtures/helpers/redis.js';
import { freeUdpRange, restCredentials } from '../fixtures/helpers/turn-client.js';
import { runUclient, startPeer, uclientSkip } from '../fixtures/helpers/uclient.js';

const CLIENTS = 3;
const MESSAGES = 20;

t.test(
  'over threshold or draining: 300 to the least-loaded node',
  { skip: redisSkip || uclientSkip },
  async (t) => {
    const redis = await startRedis(t);
    const a = await startFleetNode(t, redis, 'node-a', [
      '--fleet-max-allocations',
      '1',
      '--fleet-readyz-capacity',
    ]);
    const b = await startFleetNode(t, redis, 'node-b', ['--rfc5766-channel-numbers']);
    const readyz = async (port: number): Promise<number> =>
      (await fetch(`http://127.0.0.1:${port}/readyz`)).status;
    const seen = await waitFor(
      async () => (JSON.parse((await a.get('/admin/fleet')).body) as { nodes: unknown[] }).nodes.length === 2,
      5000,
    );
    t.ok(seen >= 0, 'A sees B in the registry');
    t.equal(await readyz(a.httpPort), 200, 'A is ready below its threshold');

    const creds = () => restCredentials(FLEET_SECRET, 'erin', 600);
    const first = await a.client(creds());
    await first.allocate();
    t.pass('the first allocation is served on A');
    t.equal(await readyz(a.httpPort), 503, 'A at its threshold: /readyz 503 (fleet-readyz-capacity)');
    t.equal(await readyz(b.httpPort), 200, 'B is ready');

    /** An Allocate to A: 300 with B's address. */
    const redirectedToB = async (why: string): Promise<void> => {
      const e = await refusal((await a.client(creds())).allocate());
      t.equal(e.code, 300, `${why}: 300 Try Alternate`);
      t.same(
        readAddress(e.response.view, AttrType.AlternateServer),
        { address: '127.0.0.1', port: b.d.port, family: 1 },
        "with B's address",
      );
    };
    await redirectedToB('the next Allocate to A');

    // A real client follows it: coturn's uclient pointed at A relays through B.
    const peerPort = await freeUdpRange(2);
    await startPeer(t, peerPort);
    const createdOnB = sample(await b.metrics(), 'turn_allocations_created_total') ?? 0;
    const report = await runUclient([
      '-m',
      String(CLIENTS),
      '-n',
      String(MESSAGES),
      '-c',
      '-u',
      'frank',
      '-W',
      FLEET_SECRET,
      '-p',
      String(a.d.port),
      '-e',
      '127.0.0.1',
      '-r',
      String(peerPort),
      '127.0.0.1',
    ]);
    t.equal(report.exitCode, 0, 'uclient finished');
    t.equal(report.sent, CLIENTS * MESSAGES, `uclient sent ${report.sent} messages`);
    t.equal(report.received, report.sent, 'and received them all back');
    t.equal(report.lost, 0, 'nothing lost');
    t.match(report.output, /error 300/, 'uclient was told to try an alternate');
    t.equal(
      (sample(await b.metrics(), 'turn_allocations_created_total') ?? 0) - createdOnB,
      CLIENTS,
      "uclient's allocations were made on B",
    );
    t.equal(sample(await a.metrics(), 'turn_allocations_created_total'), 1, 'A made none beyond its first');
    t.ok(
      (sample(await a.metrics(), 'turn_fleet_redirects_total') ?? 0) >= 1 + CLIENTS,
      'A counts its redirects',
    );

    // Below the threshold again, A serves; then it drains, and redirects again.
    await first.refresh(0);
    const back = await a.client(creds());
    await back.allocate();
    t.pass('below its threshold again, A serves');
    await back.refresh(0);
    t.match((await a.post('/admin/drain', {})).json, { draining: true });
    await redirectedToB('a draining A');
    const draining = await waitFor(async () => {
      const view = JSON.parse((await b.get('/admin/fleet')).body) as {
        nodes: { id: string; draining: boolean }[];
      };
      return view.nodes.some((n) => n.id === 'node-a' && n.draining);
    }, 3000);
    t.ok(draining >= 0, 'B sees A draining in the registry');
    // B never sends clients to a draining A: B is under no threshold, so it serves them itself.
    await (await b.client(creds())).allocate();
    assertHealthy(t, a.d);
    assertHealthy(t, b.d);
  },
);
