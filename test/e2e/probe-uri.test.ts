/**
 * The probe's pieces without a server: STUN/TURN URI parsing (RFC 7064/7065), the plain-words
 * explanations of error codes, the text report, and the resolve step (in-process, fake DNS).
 */
import t from 'tap';
import { explainError, type ProbeReport, runProbe } from '../../src/probe/probe.js';
import { formatReport } from '../../src/probe/report.js';
import { formatServerUri, parseServerUri } from '../../src/probe/uri.js';

t.test('URIs', async (t) => {
  const ok = (text: string) => {
    const r = parseServerUri(text);
    if (!r.ok) throw new Error(r.error);
    return r.uri;
  };
  t.same(ok('turn:turn.example.org'), {
    scheme: 'turn',
    host: 'turn.example.org',
    port: 3478,
    transport: 'udp',
    turn: true,
  });
  t.same(ok('turn:192.0.2.1:3479?transport=tcp'), {
    scheme: 'turn',
    host: '192.0.2.1',
    port: 3479,
    transport: 'tcp',
    turn: true,
  });
  t.same(ok('turns:[2001:db8::1]?transport=tcp'), {
    scheme: 'turns',
    host: '2001:db8::1',
    port: 5349,
    transport: 'tls',
    turn: true,
  });
  t.same(ok('TURN:Example.ORG:443?transport=UDP'), {
    scheme: 'turn',
    host: 'Example.ORG',
    port: 443,
    transport: 'udp',
    turn: true,
  });
  t.same(ok('stun:[::1]:3478'), { scheme: 'stun', host: '::1', port: 3478, transport: 'udp', turn: false });
  t.same(ok('stuns:stun.example.org'), {
    scheme: 'stuns',
    host: 'stun.example.org',
    port: 5349,
    transport: 'tls',
    turn: false,
  });
  for (const bad of [
    'http://x',
    'turn:',
    'turn:2001:db8::1',
    'turn:[192.0.2.1]',
    'turn:host:0',
    'turn:host:65536',
    'turn:host:',
    'turn:host:port',
    'turn:ho st',
    'turn:-host',
    'turn:host?transport=sctp',
    'turn:host?foo=bar',
    'turns:host?transport=udp',
    'stun:host?transport=udp',
  ]) {
    const r = parseServerUri(bad);
    t.equal(r.ok, false, bad);
    if (!r.ok) t.match(r.error, /is not a STUN\/TURN URI/, bad);
  }
  t.equal(formatServerUri(ok('turn:[2001:db8::1]')), 'turn:[2001:db8::1]:3478?transport=udp');
  t.equal(formatServerUri(ok('turns:h')), 'turns:h:5349?transport=tcp');
  t.equal(formatServerUri(ok('stun:h:1')), 'stun:h:1');
});

t.test('error codes in plain words', async (t) => {
  t.match(explainError(401, 'allocate', { realm: 'r' }), {
    problem: /credentials rejected/,
    hint: /user name and password for realm "r"/,
  });
  t.match(explainError(401, 'allocate', { rest: true }), {
    hint: /static-auth-secret.*use-auth-secret.*revoked/,
  });
  t.match(explainError(403, 'permission', { peer: '10.0.0.1' }), {
    problem: /refuses peer 10\.0\.0\.1/,
    hint: /allowed-peer-ip=10\.0\.0\.1.*--allow-loopback-peers.*--peer-address/,
  });
  t.match(explainError(508, 'allocate', {}), { problem: /no free relay port/, hint: /min-port\/max-port/ });
  t.match(explainError(508, 'channel-bind', {}), { problem: /limit reached/ });
  t.match(explainError(437, 'allocate', {}), { problem: /Allocation Mismatch/ });
  t.match(explainError(486, 'allocate', {}), { hint: /user-quota/ });
  t.match(explainError(300, 'allocate', {}), { problem: /draining/ });
  for (const code of [400, 420, 438, 440, 441, 442, 443, 500, 599]) {
    t.type(explainError(code, 'allocate', {}).problem, 'string', String(code));
  }
});

t.test('text report', async (t) => {
  const report: ProbeReport = {
    uri: 'turn:turn.example.org:3478?transport=udp',
    server: { host: 'turn.example.org', address: '192.0.2.1', port: 3478, transport: 'udp' },
    ok: false,
    steps: [
      { name: 'binding', ok: true, rttMs: 12.345, detail: 'mapped address 198.51.100.1:4000' },
      {
        name: 'allocate',
        ok: false,
        rttMs: 20,
        code: 401,
        detail: 'error 401',
        problem: 'credentials rejected',
        hint: 'check them',
      },
    ],
    mappedAddress: '198.51.100.1:4000',
    relayedAddresses: [],
    realm: 'example.org',
    username: 'alice',
    peerAddress: undefined,
    problems: ['allocate: credentials rejected'],
    elapsedMs: 40,
  };
  t.equal(
    formatReport(report),
    [
      'turnpike probe turn:turn.example.org:3478?transport=udp (turn.example.org is 192.0.2.1)',
      '  user name alice',
      '  PASS  binding      12.3 ms    mapped address 198.51.100.1:4000',
      '  FAIL  allocate     20.0 ms    error 401',
      '        problem: credentials rejected',
      '        hint: check them',
      '',
      'mapped address: 198.51.100.1:4000',
      'result: FAILED (1 problem)',
      '  - allocate: credentials rejected',
      '',
    ].join('\n'),
  );
  const good = formatReport({
    ...report,
    ok: true,
    steps: [report.steps[0]!],
    relayedAddresses: ['192.0.2.1:50000'],
    peerAddress: '127.0.0.1:9',
    problems: [],
  });
  t.match(good, /relay address: {2}192\.0\.2\.1:50000\npeer address: {3}127\.0\.0\.1:9\nresult: OK/);
});

t.test('a name that does not resolve', async (t) => {
  const r = await runProbe({
    uri: { scheme: 'turn', host: 'turn.invalid', port: 3478, transport: 'udp', turn: true },
    credentials: undefined,
    timeoutMs: 100,
    resolve: async () => {
      throw Object.assign(new Error('getaddrinfo ENOTFOUND turn.invalid'), { code: 'ENOTFOUND' });
    },
  });
  t.equal(r.ok, false);
  t.match(r.steps, [{ name: 'resolve', ok: false, problem: 'cannot resolve turn.invalid: ENOTFOUND' }]);
  t.equal(r.server.address, undefined);
});
