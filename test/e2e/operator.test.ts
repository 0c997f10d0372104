/**
 * Operator API end to end: a daemon with the HTTP listener, an api-token and REST credentials.
 *  - /ice-servers hands out credentials that authenticate (a real Allocate, and `turnpike probe`);
 *    no token or a wrong one is 401;
 *  - /admin/allocations lists a live allocation; /admin/disconnect deletes it;
 *  - /admin/revoke refuses the user id's next Allocate and deletes its allocation, and stays in
 *    force across a SIGHUP reload;
 *  - /admin/drain makes /readyz 503 and new Allocates 508 while the daemon keeps running.
 */
import { execFile } from 'node:child_process';
import t, { type Test } from 'tap';
import { assertHealthy, refusalCode } from '../fixtures/helpers/assertions.js';
import { BIN, type Daemon, freePort, startDaemon } from '../fixtures/helpers/daemon.js';
import { freeUdpRange, sleep, TurnClient } from '../fixtures/helpers/turn-client.js';

const TOKEN = 'e2e-operator-token';
const SECRET = 'e2e-rest-secret';
const REALM = 'example.test';

interface IceConfiguration {
  iceServers: { urls: string[]; username?: string; credential?: string }[];
  ttl: number;
  expiresAt: number;
}

interface Setup {
  d: Daemon;
  http: string;
  get(path: string, token?: string): Promise<{ status: number; body: string }>;
  post(path: string, body: unknown): Promise<{ status: number; json: unknown }>;
  credentials(userid: string, ttl?: number): Promise<{ username: string; password: string }>;
}

async function setup(t: Test): Promise<Setup> {
  const httpPort = await freePort();
  const relay = await freeUdpRange(1);
  const d = await startDaemon([
    '--listening-ip',
    '127.0.0.1',
    '--realm',
    REALM,
    '--use-auth-secret',
    '--static-auth-secret',
    SECRET,
    '--allowed-peer-ip',
    '127.0.0.1',
    '--min-port',
    String(relay),
    '--max-port',
    String(Math.min(65535, relay + 99)),
    '--prometheus',
    '--prometheus-port',
    String(httpPort),
    '--api-token',
    TOKEN,
  ]);
  t.teardown(() => d.stop());
  const http = `http://127.0.0.1:${httpPort}`;
  const s: Setup = {
    d,
    http,
    get: async (path, token = TOKEN) => {
      const r = await fetch(http + path, { headers: { authorization: `Bearer ${token}` } });
      return { status: r.status, body: await r.text() };
    },
    post: async (path, body) => {
      const r = await fetch(http + path, {
        method: 'POST',
        headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      return { status: r.status, json: await r.json() };
    },
    credentials: async (userid, ttl = 600) => {
      const r = await s.get(`/ice-servers?userid=${userid}&ttl=${ttl}`);
      if (r.status !== 200) throw new Error(`/ice-servers: ${r.status} ${r.body}`);
      const turn = (JSON.parse(r.body) as IceConfiguration).iceServers.find((x) => x.username !== undefined);
      if (turn?.username === undefined || turn.credential === undefined) throw new Error('no TURN entry');
      return { username: turn.username, password: turn.credential };
    },
  };
  return s;
}

async function client(t: Test, s: Setup, creds: { username: string; password: string }): Promise<TurnClient> {
  const c = await TurnClient.connect('127.0.0.1', s.d.port, { ...creds, realm: REALM });
  t.teardown(() => c.close());
  return c;
}

function runProbe(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, 'probe', ...args], { timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

t.test('GET /ice-servers: token required; its credentials authenticate', async (t) => {
  const s = await setup(t);
  t.equal((await s.get('/ice-servers?userid=web-1', '')).status, 401, 'no token');
  const noHeader = await fetch(`${s.http}/ice-servers?userid=web-1`);
  t.equal(noHeader.status, 401, 'no header');
  await noHeader.text();
  t.equal((await s.get('/ice-servers?userid=web-1', 'wrong-token')).status, 401, 'wrong token');

  const r = await s.get('/ice-servers?userid=web-1&ttl=300');
  t.equal(r.status, 200);
  const body = JSON.parse(r.body) as IceConfiguration;
  t.same(
    body.iceServers.map((x) => x.urls),
    [
      [`stun:127.0.0.1:${s.d.port}`],
      [`turn:127.0.0.1:${s.d.port}?transport=udp`, `turn:127.0.0.1:${s.d.port}?transport=tcp`],
    ],
    'UDP and TCP URLs on the listening address',
  );
  t.equal(body.ttl, 300);
  t.match(body.iceServers[1]?.username, new RegExp(`^${body.expiresAt}:web-1$`));
  t.ok(Math.abs(body.expiresAt - (Date.now() / 1000 + 300)) < 5, 'expiresAt is now + ttl');
  t.notMatch(r.body, SECRET, 'the secret stays on the server');

  const creds = await s.credentials('web-1');
  const c = await client(t, s, creds);
  const a = await c.allocate();
  t.equal(a.relayed.address, '127.0.0.1', 'Allocate with the handed-out credentials succeeds');
  await c.refresh(0);

  const probe = await runProbe([
    `turn:127.0.0.1:${s.d.port}?transport=udp`,
    '--user',
    creds.username,
    '--password',
    creds.password,
  ]);
  t.equal(probe.code, 0, `probe passes:\n${probe.stdout}${probe.stderr}`);
  t.match(probe.stdout, /relay address:\s+127\.0\.0\.1:\d+/);
  t.equal(s.d.stderr(), '');
});

t.test('admin: list, disconnect, revoke (survives SIGHUP), drain', async (t) => {
  const s = await setup(t);
  t.same(await s.get('/admin/allocations'), {
    status: 200,
    body: `${JSON.stringify({ turn: true, count: 0, allocations: [], users: [] }, null, 2)}\n`,
  });

  // list
  const alice = await client(t, s, await s.credentials('alice'));
  const a = await alice.allocate();
  const peer = { address: '127.0.0.1', port: 9 };
  await alice.createPermission(peer);
  const list = JSON.parse((await s.get('/admin/allocations')).body) as {
    count: number;
    allocations: Record<string, unknown>[];
  };
  t.equal(list.count, 1);
  t.match(list.allocations[0], {
    user: 'alice',
    username: /^\d+:alice$/,
    transport: 'udp',
    client: `127.0.0.1:${alice.localPort}`,
    relays: [`127.0.0.1:${a.relayed.port}`],
    ageSec: Number,
    expiresInSec: Number,
    toPeer: { packets: 0, bytes: 0 },
    toClient: { packets: 0, bytes: 0 },
    permissions: 1,
    channels: 0,
  });

  // disconnect
  t.same(await s.post('/admin/disconnect', { user: 'alice' }), {
    status: 200,
    json: { user: 'alice', disconnected: 1 },
  });
  t.equal(await refusalCode(alice.refresh(600)), 437, 'the allocation is gone');
  t.match(JSON.parse((await s.get('/admin/allocations')).body), { count: 0 });
  t.ok(
    s.d.lines.some((l) => /"reason":"admin"/.test(l) && /"allocation deleted"/.test(l)),
    'logged with reason admin',
  );

  // revoke
  const victimCreds = await s.credentials('victim');
  const victim = await client(t, s, victimCreds);
  await victim.allocate();
  const until = Math.floor(Date.now() / 1000) + 300;
  t.same(await s.post('/admin/revoke', { userid: 'victim', until }), {
    status: 200,
    json: { userid: 'victim', until, disconnected: 1 },
  });
  t.equal(await refusalCode(victim.refresh(600)), 401, 'its requests are refused');
  const users = (
    JSON.parse((await s.get('/admin/allocations')).body) as { allocations: { user: string }[] }
  ).allocations.map((x) => x.user);
  t.same(users, [], 'its allocation is gone');
  const again = await client(t, s, await s.credentials('victim'));
  t.equal(await refusalCode(again.allocate()), 401, 'fresh credentials for the revoked id are refused');
  const bystander = await client(t, s, await s.credentials('bystander'));
  await bystander.allocate();
  t.pass('other user ids still allocate');

  s.d.proc.kill('SIGHUP');
  for (let i = 0; i < 50 && !s.d.lines.some((l) => l.includes('configuration reloaded')); i++)
    await sleep(50);
  t.ok(
    s.d.lines.some((l) => l.includes('configuration reloaded')),
    'reloaded',
  );
  const afterReload = await client(t, s, await s.credentials('victim'));
  t.equal(await refusalCode(afterReload.allocate()), 401, 'still revoked after SIGHUP');
  t.match((await s.post('/admin/unrevoke', { userid: 'victim' })).json, { lifted: true });
  const lifted = await client(t, s, await s.credentials('victim'));
  await lifted.allocate();
  t.pass('allocates again once lifted');

  // drain
  t.equal((await fetch(`${s.http}/readyz`)).status, 200);
  t.match(await s.post('/admin/drain', {}), { status: 200, json: { draining: true, allocations: 2 } });
  const ready = await fetch(`${s.http}/readyz`);
  t.equal(ready.status, 503);
  t.equal(await ready.text(), 'draining\n');
  const late = await client(t, s, await s.credentials('late'));
  t.equal(await refusalCode(late.allocate()), 508, 'new Allocates refused while draining');
  t.equal(await bystander.refresh(600), 600, 'existing allocations keep working');
  assertHealthy(t, s.d);
});
