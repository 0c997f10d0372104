/**
 * ICE-server credentials: the builder in src/credentials.ts (URLs per enabled transport, public
 * host, ttl and user id rules, REST username and credential) and the `GET /ice-servers` route on an
 * in-process HttpApi (bearer token, status codes, JSON shape).
 */
import { createHmac } from 'node:crypto';
import t, { type Test } from 'tap';
import { defaults } from '../../src/config/schema.js';
import type { Config } from '../../src/config/types.js';
import {
  checkUserId,
  enabledTransports,
  hostPort,
  iceServers,
  parseCredentialFormat,
  parseTtl,
  publicHost,
  RevocationList,
  restApiAnswer,
} from '../../src/credentials.js';
import { addOperatorRoutes } from '../../src/http/operator-api.js';
import { HttpApi } from '../../src/http/server.js';
import { createLogger } from '../../src/log.js';

const NOW = 1_800_000_000;
const TOKEN = 'operator-token-1234';
const SECRETS = ['first-secret', 'second-secret'];

function config(overrides: Partial<Config> = {}): Config {
  return {
    ...defaults(),
    useAuthSecret: true,
    staticAuthSecrets: SECRETS,
    listeningIps: ['192.0.2.10'],
    apiToken: TOKEN,
    ...overrides,
  };
}

const hmac = (secret: string, username: string): string =>
  createHmac('sha1', secret).update(username).digest('base64');

const noHosts = (): string[] => [];

t.test('public host: public-host, external-ip, listening-ip, host addresses, loopback', async (t) => {
  t.equal(publicHost(config({ publicHost: 'turn.example.org' }), noHosts), 'turn.example.org');
  t.equal(
    publicHost(config({ externalIps: ['203.0.113.5/10.0.0.5', '203.0.113.6'] }), noHosts),
    '203.0.113.5',
    'first external-ip, public side',
  );
  t.equal(publicHost(config({ listeningIps: ['0.0.0.0', '::', '2001:db8::7'] }), noHosts), '2001:db8::7');
  t.equal(
    publicHost(config({ listeningIps: [] }), () => ['198.51.100.3', '2001:db8::1']),
    '198.51.100.3',
  );
  t.equal(publicHost(config({ listeningIps: ['0.0.0.0'] }), noHosts), '127.0.0.1', 'nothing else: loopback');
  t.equal(hostPort('2001:db8::7', 3478), '[2001:db8::7]:3478', 'IPv6 in brackets');
  t.equal(hostPort('turn.example.org', 443), 'turn.example.org:443');
  t.equal(hostPort('192.0.2.1', 3478), '192.0.2.1:3478');
});

t.test('user id and ttl rules', async (t) => {
  t.equal(checkUserId('alice.smith@example_1+x=y~z-'), undefined);
  t.equal(checkUserId('a'.repeat(64)), undefined, '64 characters');
  t.match(checkUserId('a'.repeat(65)), /at most 64/);
  t.match(checkUserId(undefined), /required/);
  t.match(checkUserId(''), /required/);
  for (const bad of ['a:b', 'a b', 'é', 'a/b', 'a\nb', '<script>'])
    t.match(checkUserId(bad), /only letters/, bad);
  t.equal(parseTtl(undefined), 3600, 'default');
  t.equal(parseTtl(''), 3600);
  t.equal(parseTtl('600'), 600);
  t.equal(parseTtl(600), 600);
  t.equal(parseTtl('60'), 60, 'the shortest');
  t.equal(parseTtl(86400), 86400, 'the longest');
  t.equal(parseTtl('1'), 'ttl must be 60-86400 seconds, got 1', 'too short: refused, not raised to 60');
  t.equal(parseTtl('59'), 'ttl must be 60-86400 seconds, got 59');
  t.equal(parseTtl('0'), 'ttl must be 60-86400 seconds, got 0');
  t.equal(parseTtl('86401'), 'ttl must be 60-86400 seconds, got 86401', 'too long: refused, not cut');
  t.equal(parseTtl(999999), 'ttl must be 60-86400 seconds, got 999999');
  for (const bad of ['-5', '1.5', 'abc', '1e3', '0x10', '9999999999']) t.type(parseTtl(bad), 'string', bad);
  t.type(parseTtl(-1), 'string');
  t.type(parseTtl(Number.NaN), 'string');
});

t.test('transports: UDP, TCP, TLS only with cert and pkey and without no-tls', async (t) => {
  t.same(enabledTransports(config()), ['udp', 'tcp']);
  t.same(enabledTransports(config({ cert: 'c.pem', pkey: 'k.pem' })), ['udp', 'tcp', 'tls']);
  t.same(enabledTransports(config({ cert: 'c.pem', pkey: 'k.pem', noTls: true })), ['udp', 'tcp']);
  t.same(enabledTransports(config({ noUdp: true, cert: 'c.pem', pkey: 'k.pem' })), ['tcp', 'tls']);
  t.same(enabledTransports(config({ noUdp: true, noTcp: true })), []);
});

t.test('the RTCConfiguration: URLs, order, REST username and credential', async (t) => {
  const c = config({ cert: 'c.pem', pkey: 'k.pem', listeningPort: 3478, tlsListeningPort: 443 });
  const r = iceServers(c, { userid: 'alice', ttl: '600', nowSec: NOW }, noHosts);
  if (!r.ok) throw new Error(r.error);
  const username = `${NOW + 600}:alice`;
  t.same(r.value, {
    iceServers: [
      { urls: ['stun:192.0.2.10:3478'] },
      {
        urls: [
          'turn:192.0.2.10:3478?transport=udp',
          'turn:192.0.2.10:3478?transport=tcp',
          'turns:192.0.2.10:443?transport=tcp',
        ],
        username,
        credential: hmac('first-secret', username),
      },
    ],
    ttl: 600,
    expiresAt: NOW + 600,
  });
  t.notMatch(JSON.stringify(r.value), /first-secret|second-secret/, 'no secret in the answer');

  const v6 = iceServers(config({ publicHost: '2001:db8::1' }), { userid: 'u', ttl: undefined, nowSec: NOW });
  t.match(v6, { ok: true, value: { ttl: 3600, expiresAt: NOW + 3600 } });
  t.same(v6.ok && v6.value.iceServers.flatMap((s) => s.urls), [
    'stun:[2001:db8::1]:3478',
    'turn:[2001:db8::1]:3478?transport=udp',
    'turn:[2001:db8::1]:3478?transport=tcp',
  ]);

  const tcpOnly = iceServers(config({ noUdp: true }), { userid: 'u', ttl: 60, nowSec: NOW }, noHosts);
  t.same(
    tcpOnly.ok && tcpOnly.value.iceServers.map((s) => s.urls),
    [['turn:192.0.2.10:3478?transport=tcp']],
    'no stun: URL without UDP',
  );
  const filtered = iceServers(c, { userid: 'u', ttl: 60, transports: 'tls, udp', nowSec: NOW }, noHosts);
  t.same(filtered.ok && filtered.value.iceServers.flatMap((s) => s.urls), [
    'stun:192.0.2.10:3478',
    'turn:192.0.2.10:3478?transport=udp',
    'turns:192.0.2.10:443?transport=tcp',
  ]);
  t.match(iceServers(c, { userid: 'u', ttl: 60, transports: ['quic'], nowSec: NOW }), {
    ok: false,
    status: 400,
  });
  t.match(iceServers(config(), { userid: 'u', ttl: 60, transports: 'tls', nowSec: NOW }), {
    ok: false,
    status: 409,
    error: /none of the requested transports/,
  });
});

t.test('refusals: REST off (409), bad user id or ttl (400)', async (t) => {
  const req = { userid: 'alice', ttl: '600', nowSec: NOW };
  t.match(iceServers(config({ useAuthSecret: false }), req), {
    ok: false,
    status: 409,
    error: /use-auth-secret/,
  });
  t.match(iceServers(config({ staticAuthSecrets: [] }), req), { ok: false, status: 409 });
  t.match(iceServers(config(), { ...req, userid: undefined }), { ok: false, status: 400, error: /required/ });
  t.match(iceServers(config(), { ...req, userid: 'a:b' }), { ok: false, status: 400 });
  t.match(iceServers(config(), { ...req, ttl: 'soon' }), { ok: false, status: 400, error: /ttl/ });
  t.match(iceServers(config(), { ...req, tag: 'a#b' }), { ok: false, status: 400, error: /tag/ });
  const tagged = iceServers(config(), { ...req, tag: 'room-7' });
  t.match(
    tagged.ok && tagged.value.iceServers.at(-1),
    { username: `${NOW + 600}:alice#room-7` },
    'a tag after #',
  );
  t.match(iceServers(config(), { ...req, ttl: '10' }), {
    ok: false,
    status: 400,
    error: 'ttl must be 60-86400 seconds, got 10',
  });
});

t.test('revocation list: until, extension, pruning, bound', async (t) => {
  const list = new RevocationList(2);
  t.notOk(list.isRevoked('a', NOW), 'empty');
  t.ok(list.revoke('a', NOW + 10, NOW));
  t.ok(list.isRevoked('a', NOW + 9));
  t.notOk(list.isRevoked('a', NOW + 10), 'ends at until');
  t.notOk(list.isRevoked('b', NOW));
  t.ok(list.revoke('a', NOW + 5, NOW), 'an earlier until does not shorten');
  t.ok(list.isRevoked('a', NOW + 9));
  t.ok(list.revoke('b', NOW + 20, NOW));
  t.notOk(list.revoke('c', NOW + 30, NOW), 'full of live entries');
  t.equal(list.size, 2);
  t.ok(list.revoke('c', NOW + 30, NOW + 10), 'the ended entry is pruned to make room');
  t.same(list.list(NOW + 10), [
    { userid: 'b', until: NOW + 20 },
    { userid: 'c', until: NOW + 30 },
  ]);
  t.ok(list.lift('b'));
  t.notOk(list.lift('b'));
  t.notOk(list.isRevoked('b', NOW + 11));
  list.prune(NOW + 100);
  t.equal(list.size, 0);
});

/** An HttpApi with the operator routes on 127.0.0.1:0; returns its base URL. */
async function api(t: Test, c: Config): Promise<string> {
  const http = new HttpApi(createLogger('silent'), c.apiToken);
  addOperatorRoutes(http, {
    config: () => c,
    turn: () => undefined,
    drain: () => {},
    revocations: new RevocationList(),
    log: createLogger('silent'),
    nowMs: () => NOW * 1000,
    hostAddresses: noHosts,
  });
  await http.listen('127.0.0.1', 0);
  t.teardown(() => http.close());
  return `http://127.0.0.1:${http.address().port}`;
}

const bearer = (token: string): RequestInit => ({ headers: { authorization: `Bearer ${token}` } });

t.test('GET /ice-servers over HTTP', async (t) => {
  const base = await api(t, config());
  let r = await fetch(`${base}/ice-servers?userid=alice&ttl=120`);
  t.equal(r.status, 401, 'no token');
  t.equal(r.headers.get('www-authenticate'), 'Bearer');
  await r.text();
  r = await fetch(`${base}/ice-servers?userid=alice&ttl=120`, bearer('wrong-token-123456'));
  t.equal(r.status, 401, 'wrong token');
  await r.text();
  r = await fetch(`${base}/ice-servers?userid=alice&ttl=120`, bearer(TOKEN));
  t.equal(r.status, 200);
  t.match(r.headers.get('content-type'), /^application\/json/);
  t.equal(r.headers.get('cache-control'), 'no-store');
  const body = (await r.json()) as {
    iceServers: { urls: string[]; username?: string; credential?: string }[];
  };
  const turn = body.iceServers[1];
  t.equal(turn?.username, `${NOW + 120}:alice`);
  t.equal(turn?.credential, hmac('first-secret', `${NOW + 120}:alice`));
  t.same(body, {
    iceServers: [
      { urls: ['stun:192.0.2.10:3478'] },
      {
        urls: ['turn:192.0.2.10:3478?transport=udp', 'turn:192.0.2.10:3478?transport=tcp'],
        username: `${NOW + 120}:alice`,
        credential: hmac('first-secret', `${NOW + 120}:alice`),
      },
    ],
    ttl: 120,
    expiresAt: NOW + 120,
  });

  r = await fetch(`${base}/ice-servers?userid=alice&transport=udp`, bearer(TOKEN));
  t.same(((await r.json()) as { iceServers: { urls: string[] }[] }).iceServers[1]?.urls, [
    'turn:192.0.2.10:3478?transport=udp',
  ]);
  for (const [query, status] of [
    ['', 400],
    ['userid=a:b', 400],
    [`userid=${'x'.repeat(65)}`, 400],
    ['userid=alice&ttl=-1', 400],
    ['userid=alice&ttl=10', 400],
    ['userid=alice&ttl=86401', 400],
    ['userid=alice&format=xml', 400],
    ['userid=alice&format=REST', 400],
    ['userid=alice&transport=sctp', 400],
  ] as const) {
    r = await fetch(`${base}/ice-servers?${query}`, bearer(TOKEN));
    t.equal(r.status, status, query);
    t.type(((await r.json()) as { error?: unknown }).error, 'string');
  }
  r = await fetch(`${base}/ice-servers?userid=alice`, { method: 'POST', ...bearer(TOKEN) });
  t.equal(r.status, 405, 'GET only');
  await r.text();
});

t.test('GET /ice-servers: 409 without REST credentials, 403 without an api-token', async (t) => {
  const off = await api(t, config({ useAuthSecret: false, staticAuthSecrets: [] }));
  const r = await fetch(`${off}/ice-servers?userid=alice`, bearer(TOKEN));
  t.equal(r.status, 409);
  t.match(await r.json(), { error: /use-auth-secret/ });
  const noToken = await api(t, config({ apiToken: undefined }));
  const r2 = await fetch(`${noToken}/ice-servers?userid=alice`, bearer(TOKEN));
  t.equal(r2.status, 403);
  t.match(await r2.text(), /no api-token/);
});

t.test('the TURN REST API draft answer: the same credential and TURN URLs', async (t) => {
  const c = config({ cert: 'c.pem', pkey: 'k.pem', tlsListeningPort: 443 });
  const r = iceServers(c, { userid: 'alice', ttl: 600, nowSec: NOW }, noHosts);
  if (!r.ok) throw new Error(r.error);
  const username = `${NOW + 600}:alice`;
  t.same(restApiAnswer(r.value), {
    username,
    password: hmac('first-secret', username),
    ttl: 600,
    uris: [
      'turn:192.0.2.10:3478?transport=udp',
      'turn:192.0.2.10:3478?transport=tcp',
      'turns:192.0.2.10:443?transport=tcp',
    ],
  });
  t.same(parseCredentialFormat(null), { ok: true, format: 'rtc' });
  t.same(parseCredentialFormat(''), { ok: true, format: 'rtc' });
  t.same(parseCredentialFormat('rtc'), { ok: true, format: 'rtc' });
  t.same(parseCredentialFormat('rest'), { ok: true, format: 'rest' });
  t.match(parseCredentialFormat('json'), { ok: false, error: /format must be rtc .* or rest/ });
});

t.test('GET /ice-servers?format=rest over HTTP', async (t) => {
  const base = await api(t, config());
  let r = await fetch(`${base}/ice-servers?userid=alice&ttl=120&format=rest`, bearer(TOKEN));
  t.equal(r.status, 200);
  t.match(r.headers.get('content-type'), /^application\/json/);
  const username = `${NOW + 120}:alice`;
  t.same(await r.json(), {
    username,
    password: hmac('first-secret', username),
    ttl: 120,
    uris: ['turn:192.0.2.10:3478?transport=udp', 'turn:192.0.2.10:3478?transport=tcp'],
  });
  r = await fetch(`${base}/ice-servers?userid=alice&format=rest&transport=tcp`, bearer(TOKEN));
  t.same(((await r.json()) as { uris: string[] }).uris, ['turn:192.0.2.10:3478?transport=tcp']);
  r = await fetch(`${base}/ice-servers?userid=alice&format=rtc`, bearer(TOKEN));
  t.equal(r.status, 200);
  t.type(((await r.json()) as { iceServers?: unknown }).iceServers, Array, 'rtc: the RTCConfiguration');
  r = await fetch(`${base}/ice-servers?userid=alice&format=soap`, bearer(TOKEN));
  t.equal(r.status, 400);
  t.match(await r.json(), { error: /format must be rtc .* or rest/ });
  r = await fetch(`${base}/ice-servers?userid=alice&ttl=10&format=rest`, bearer(TOKEN));
  t.equal(r.status, 400);
  t.same(await r.json(), { error: 'ttl must be 60-86400 seconds, got 10' });

  const off = await api(t, config({ useAuthSecret: false, staticAuthSecrets: [] }));
  r = await fetch(`${off}/ice-servers?userid=alice&format=rest`, bearer(TOKEN));
  t.equal(r.status, 409, 'REST credentials off: 409 in either format');
  await r.text();
});
