/**
 * The admin routes (`/admin/*`) on an in-process HttpApi, over the in-memory TURN world of
 * turn-core-harness: listing allocations with their counters, disconnecting a user, revoking a
 * REST user id (its next Allocate is refused, its allocations are gone), lifting it, draining.
 */
import t, { type Test } from 'tap';
import { defaults } from '../../src/config/schema.js';
import type { Config } from '../../src/config/types.js';
import { Method } from '../../src/core/constants.js';
import { RevocationList } from '../../src/credentials.js';
import { addOperatorRoutes } from '../../src/http/operator-api.js';
import { HttpApi } from '../../src/http/server.js';
import { createLogger } from '../../src/log.js';
import {
  ALICE,
  errorOf,
  Harness,
  RELAY_V4,
  restUser,
  SECRETS,
  T0_MS,
} from '../fixtures/helpers/turn-core-harness.js';

const TOKEN = 'admin-token-for-tests';
const NOW_SEC = T0_MS / 1000;

interface World {
  readonly h: Harness;
  readonly base: string;
  readonly revocations: RevocationList;
  readonly drains: { count: number };
  /** Authorized request; JSON body for POSTs. */
  call(method: 'GET' | 'POST', path: string, body?: unknown): Promise<{ status: number; json: unknown }>;
}

async function world(t: Test, options: { revocable?: boolean } = {}): Promise<World> {
  const h = new Harness();
  const revocations = new RevocationList(3);
  // What server.ts does: every authenticator it builds consults the revocation list.
  if (options.revocable !== false)
    h.service.reconfigure(
      h.options,
      h.auth.withRevocation((userId, nowSec) => revocations.isRevoked(userId, nowSec)),
      h.policy,
    );
  const drains = { count: 0 };
  const config: Config = { ...defaults(), apiToken: TOKEN, users: ['alice:wonderland'] };
  const http = new HttpApi(createLogger('silent'), TOKEN);
  addOperatorRoutes(http, {
    config: () => config,
    turn: () => h.service,
    drain: () => {
      drains.count++;
      h.service.setDraining(true);
    },
    revocations,
    log: createLogger('silent'),
    nowMs: () => h.nowMs,
  });
  await http.listen('127.0.0.1', 0);
  t.teardown(() => http.close());
  const base = `http://127.0.0.1:${http.address().port}`;
  return {
    h,
    base,
    revocations,
    drains,
    call: async (method, path, body) => {
      const r = await fetch(base + path, {
        method,
        headers: { authorization: `Bearer ${TOKEN}` },
        ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
      });
      return { status: r.status, json: await r.json() };
    },
  };
}

const expiry = NOW_SEC + 3600;
const WEB = restUser(SECRETS[0]!, expiry, 'web-7');

t.test('every admin route wants the token', async (t) => {
  const w = await world(t);
  for (const [method, path] of [
    ['GET', '/admin/allocations'],
    ['POST', '/admin/disconnect'],
    ['POST', '/admin/revoke'],
    ['POST', '/admin/unrevoke'],
    ['GET', '/admin/revocations'],
    ['POST', '/admin/drain'],
  ] as const) {
    const r = await fetch(w.base + path, { method, body: method === 'POST' ? '{}' : null });
    t.equal(r.status, 401, `${method} ${path}`);
    await r.text();
  }
  t.equal(w.drains.count, 0);
});

t.test('GET /admin/allocations lists users, addresses, age, counters', async (t) => {
  const w = await world(t);
  const empty = await w.call('GET', '/admin/allocations');
  t.same(empty, { status: 200, json: { turn: true, count: 0, allocations: [], users: [] } });

  w.h.plane.setLimits({ payloadPolicy: 'webrtc', maxBps: 0, userMaxBps: 0, bpsCapacity: 0 });
  const alice = w.h.client(ALICE, '198.51.100.20', 40000);
  t.equal(errorOf(alice.allocate()), undefined);
  t.equal(errorOf(alice.createPermission(['198.51.100.50', '198.51.100.51'])), undefined);
  t.equal(errorOf(alice.channelBind(0x4001, '198.51.100.50', 5000)), undefined);
  alice.channelData(0x4001, Buffer.alloc(100));
  alice.channelData(0x4001, Buffer.alloc(20));
  w.h.fromPeer(alice.relay(), Buffer.alloc(7), '198.51.100.50', 5000);
  // Not WebRTC (a QUIC long header): refused by relay-payload-policy, both ways.
  alice.channelData(0x4001, Buffer.alloc(30, 0xc3));
  w.h.fromPeer(alice.relay(), Buffer.alloc(30, 0xc3), '198.51.100.50', 5000);
  const web = w.h.client(WEB, '2001:db8::20', 40001);
  t.equal(errorOf(web.allocate()), undefined);
  w.h.advance(5);

  const r = await w.call('GET', '/admin/allocations');
  t.equal(r.status, 200);
  const relayPort = alice.relay().port;
  t.same(r.json, {
    turn: true,
    count: 2,
    allocations: [
      {
        id: 1,
        user: 'alice',
        username: 'alice',
        transport: 'udp',
        client: '198.51.100.20:40000',
        relays: [`${RELAY_V4.advertised}:${relayPort}`],
        ageSec: 5,
        expiresInSec: 595,
        toPeer: { packets: 2, bytes: 120 },
        toClient: { packets: 1, bytes: 7 },
        dropped: { payloadPolicy: 2, bandwidth: 0 },
        permissions: 2,
        channels: 1,
      },
      {
        id: 2,
        user: 'web-7',
        username: WEB.username,
        transport: 'udp',
        client: '[2001:db8::20]:40001',
        relays: [`${RELAY_V4.advertised}:${web.relay().port}`],
        ageSec: 5,
        expiresInSec: 595,
        toPeer: { packets: 0, bytes: 0 },
        toClient: { packets: 0, bytes: 0 },
        dropped: { payloadPolicy: 0, bandwidth: 0 },
        permissions: 0,
        channels: 0,
      },
    ],
    users: [
      { user: 'alice', allocations: 1, dropped: { payloadPolicy: 2, bandwidth: 0 } },
      { user: 'web-7', allocations: 1, dropped: { payloadPolicy: 0, bandwidth: 0 } },
    ],
  });
});

t.test('POST /admin/disconnect deletes a user’s allocations with reason admin', async (t) => {
  const w = await world(t);
  const a1 = w.h.client(ALICE, '198.51.100.20', 40000);
  const a2 = w.h.client(ALICE, '198.51.100.20', 40002);
  const web = w.h.client(WEB, '198.51.100.21', 40000);
  for (const c of [a1, a2, web]) t.equal(errorOf(c.allocate()), undefined);

  t.same(await w.call('POST', '/admin/disconnect', { user: 'alice' }), {
    status: 200,
    json: { user: 'alice', disconnected: 2 },
  });
  t.equal(w.h.service.table.size, 1);
  t.same(
    w.h.events.filter((e) => e.kind === 'deleted').map((e) => [e.allocation.userId, e.reason]),
    [
      ['alice', 'admin'],
      ['alice', 'admin'],
    ],
  );
  t.equal(errorOf(a1.refresh(600)), 437, 'the client finds its allocation gone');
  t.same(await w.call('POST', '/admin/disconnect', { user: 'alice' }), {
    status: 200,
    json: { user: 'alice', disconnected: 0 },
  });
  t.same(
    await w.call('POST', '/admin/disconnect', { user: WEB.username }),
    { status: 200, json: { user: WEB.username, disconnected: 1 } },
    'by full REST user name too',
  );

  for (const body of ['', 'not json', '[]', '{}', '{"user": 5}', '{"user": ""}', '{"user": "a\\u0000b"}']) {
    const r = await w.call('POST', '/admin/disconnect', body);
    t.equal(r.status, 400, body);
    t.match(r.json, { error: /body|user/ });
  }
  const long = await w.call('POST', '/admin/disconnect', { user: 'x'.repeat(513) });
  t.equal(long.status, 400);
  const get = await fetch(`${w.base}/admin/disconnect`, { headers: { authorization: `Bearer ${TOKEN}` } });
  t.equal(get.status, 405);
  await get.text();
});

t.test('POST /admin/revoke refuses a REST user id until a time and drops its allocations', async (t) => {
  const w = await world(t);
  const web = w.h.client(WEB, '198.51.100.21', 40000);
  t.equal(errorOf(web.allocate()), undefined);
  // A static user whose name is the revoked id is neither refused nor disconnected.
  const alice = w.h.client(ALICE, '198.51.100.22', 40000);
  t.equal(errorOf(alice.allocate()), undefined);

  const r = await w.call('POST', '/admin/revoke', { userid: 'web-7', until: NOW_SEC + 60 });
  t.same(r, { status: 200, json: { userid: 'web-7', until: NOW_SEC + 60, disconnected: 1 } });
  t.equal(web.allocation(), undefined, 'allocation gone');
  t.equal(w.h.service.table.size, 1);

  const again = w.h.client(WEB, '198.51.100.21', 40001);
  t.equal(errorOf(again.allocate()), 401, 'the next Allocate is refused');
  t.equal(w.h.stats.authFailures.get('revoked'), 1, 'counted as revoked');
  const other = w.h.client(restUser(SECRETS[1]!, expiry, 'web-8'), '198.51.100.21', 40002);
  t.equal(errorOf(other.allocate()), undefined, 'other user ids are fine');
  (await w.call('POST', '/admin/revoke', { userid: 'alice', until: NOW_SEC + 60 })).status;
  t.equal(errorOf(alice.refresh(600)), undefined, 'static user alice untouched');

  t.same(await w.call('GET', '/admin/revocations'), {
    status: 200,
    json: {
      revocations: [
        { userid: 'alice', until: NOW_SEC + 60 },
        { userid: 'web-7', until: NOW_SEC + 60 },
      ],
    },
  });

  // A reconfigure (SIGHUP) builds a new authenticator with the same list (as server.ts does): the
  // revocation stays in force. (test/e2e/operator.test.ts checks this through a real SIGHUP.)
  w.h.service.reconfigure(
    w.h.options,
    w.h.auth.withRevocation((userId, nowSec) => w.revocations.isRevoked(userId, nowSec)),
    w.h.policy,
  );
  const third = w.h.client(WEB, '198.51.100.21', 40003);
  t.equal(errorOf(third.allocate()), 401, 'still refused after reconfigure');

  // The revocation ends at `until`.
  w.h.advance(60);
  const later = w.h.client(WEB, '198.51.100.21', 40004);
  t.equal(errorOf(later.allocate()), undefined, 'usable again once it ends');

  // Lifting one early.
  await w.call('POST', '/admin/revoke', { userid: 'web-8' });
  const r8 = w.h.client(restUser(SECRETS[1]!, expiry, 'web-8'), '198.51.100.21', 40005);
  t.equal(errorOf(r8.allocate()), 401, 'default until: in force');
  t.match((await w.call('GET', '/admin/revocations')).json, {
    revocations: [{ userid: 'web-8', until: w.h.nowSec + 86400 }],
  });
  t.same(await w.call('POST', '/admin/unrevoke', { userid: 'web-8' }), {
    status: 200,
    json: { userid: 'web-8', lifted: true },
  });
  t.same((await w.call('POST', '/admin/unrevoke', { userid: 'web-8' })).json, {
    userid: 'web-8',
    lifted: false,
  });
  const r8b = w.h.client(restUser(SECRETS[1]!, expiry, 'web-8'), '198.51.100.21', 40006);
  t.equal(errorOf(r8b.allocate()), undefined, 'lifted');

  for (const body of [
    {},
    { userid: '' },
    { userid: 'x', until: 'tomorrow' },
    { userid: 'x', until: w.h.nowSec },
    { userid: 'x', until: 1.5 },
  ]) {
    const bad = await w.call('POST', '/admin/revoke', body);
    t.equal(bad.status, 400, JSON.stringify(body));
  }
  t.equal((await w.call('POST', '/admin/unrevoke', {})).status, 400);

  // The list is bounded (3 here): live entries are never dropped to make room.
  for (const id of ['a', 'b', 'c'])
    t.equal((await w.call('POST', '/admin/revoke', { userid: id })).status, 200);
  const full = await w.call('POST', '/admin/revoke', { userid: 'd' });
  t.equal(full.status, 503);
  t.match(full.json, { error: /full/ });
});

t.test('an authenticator built without the list never consults it', async (t) => {
  const w = await world(t, { revocable: false });
  await w.call('POST', '/admin/revoke', { userid: 'web-7' });
  const web = w.h.client(WEB, '198.51.100.21', 40000);
  t.equal(errorOf(web.allocate()), undefined);
});

t.test('POST /admin/drain calls the drain closure', async (t) => {
  const w = await world(t);
  const alice = w.h.client(ALICE, '198.51.100.20', 40000);
  t.equal(errorOf(alice.allocate()), undefined);
  t.same(await w.call('POST', '/admin/drain'), { status: 200, json: { draining: true, allocations: 1 } });
  t.equal(w.drains.count, 1);
  const late = w.h.client(ALICE, '198.51.100.20', 40001);
  t.equal(errorOf(late.allocate()), 508, 'new allocations refused');
  t.equal(errorOf(alice.request(Method.Refresh)), undefined, 'existing ones keep working');
});

t.test('TURN off: empty lists, nothing to disconnect', async (t) => {
  const http = new HttpApi(createLogger('silent'), TOKEN);
  addOperatorRoutes(http, {
    config: () => ({ ...defaults(), apiToken: TOKEN }),
    turn: () => undefined,
    drain: () => {},
    revocations: new RevocationList(),
    log: createLogger('silent'),
  });
  await http.listen('127.0.0.1', 0);
  t.teardown(() => http.close());
  const base = `http://127.0.0.1:${http.address().port}`;
  const auth = { authorization: `Bearer ${TOKEN}` };
  const list = await fetch(`${base}/admin/allocations`, { headers: auth });
  t.same(await list.json(), { turn: false, count: 0, allocations: [], users: [] });
  const d = await fetch(`${base}/admin/disconnect`, { method: 'POST', headers: auth, body: '{"user":"x"}' });
  t.same(await d.json(), { user: 'x', disconnected: 0 });
  const drain = await fetch(`${base}/admin/drain`, { method: 'POST', headers: auth });
  t.same(await drain.json(), { draining: true, allocations: 0 });
});
