/**
 * Logs an operator can use: every listener at start with what it serves; authentication failures
 * at info with user, realm, client address and reason (never a password), at most about ten lines
 * a second however many failures arrive; the first 401 of an allocation is a challenge, not a
 * failure; `--log-format pretty` prints human-readable lines (pino-pretty), JSON stays the default.
 */
import { spawn } from 'node:child_process';
import t from 'tap';
import { refusalCode } from '../fixtures/helpers/assertions.js';
import { makeCertificate, testDir } from '../fixtures/helpers/certificates.js';
import { aliceOnLoopback, BIN, freePort, startDaemon } from '../fixtures/helpers/daemon.js';
import { addUdpTransport, sleep, TurnClient } from '../fixtures/helpers/turn-client.js';

const REALM = 'example.test';
const WRONG = 'not-the-password-7f3a';

/** Parsed JSON log lines (a pretty line would fail to parse). */
function records(lines: readonly string[]): Record<string, unknown>[] {
  return lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>);
}

t.test('the startup log lists every listener with what it serves', async (t) => {
  const dir = testDir(t);
  const made = makeCertificate(dir);
  const tlsPort = await freePort();
  const metricsPort = await freePort();
  const d = await startDaemon([
    '--listening-ip',
    '127.0.0.1',
    '--tls-listening-port',
    String(tlsPort),
    '--cert',
    made.cert,
    '--pkey',
    made.key,
    '--prometheus',
    '--prometheus-port',
    String(metricsPort),
  ]);
  t.teardown(() => d.stop());
  const listening = records(d.lines)
    .filter((r) => typeof r['msg'] === 'string' && (r['msg'] as string).startsWith('listening: '))
    .map((r) => `${r['serves']} ${r['address']}:${r['port']}`)
    .sort();
  t.same(
    listening,
    [
      `http 127.0.0.1:${metricsPort}`,
      `tcp+tls 127.0.0.1:${d.port}`,
      `tcp+tls 127.0.0.1:${tlsPort}`,
      `udp 127.0.0.1:${d.port}`,
    ].sort(),
    'one line per listener: udp, tcp+tls on both stream ports (TCP and TLS told apart by the first byte), http',
  );
  const started = records(d.lines).find((r) => r['msg'] === 'turnpike started');
  t.equal(started?.['turn'], false, 'no users: TURN is off, and the start line says so');
  t.ok(
    records(d.lines).some((r) => r['level'] === 'warn' && String(r['msg']).includes('TURN is disabled')),
    'a warning explains it',
  );
});

t.test(
  'authentication failures: logged at info with the facts, never the password, rate-limited',
  async (t) => {
    const d = await startDaemon(aliceOnLoopback(REALM));
    t.teardown(() => d.stop());
    // A normal allocation: its first 401 is a challenge, not a failure.
    const good = await TurnClient.connect('127.0.0.1', d.port, { username: 'alice', password: 'wonderland' });
    t.teardown(() => good.close());
    await good.allocate();
    await sleep(100);
    t.equal(
      records(d.lines).filter((r) => r['msg'] === 'authentication failed').length,
      0,
      'a successful allocation logs no failure',
    );

    const bad = await TurnClient.connect('127.0.0.1', d.port, { username: 'alice', password: WRONG });
    t.teardown(() => bad.close());
    t.equal(await refusalCode(bad.allocate()), 401, 'a wrong password is refused with 401');
    await sleep(100);
    const first = records(d.lines).find((r) => r['msg'] === 'authentication failed');
    t.match(
      first,
      {
        level: 'info',
        reason: 'bad-integrity',
        user: 'alice',
        realm: REALM,
        client: `udp:127.0.0.1:${bad.localPort}`,
      },
      'user, realm, client address and reason',
    );

    // A burst of 300 failures (the source is verified by the good client, so nothing is withheld):
    // at most the log budget (a burst of 20, then 10 a second) reaches the log.
    const t0 = Date.now();
    for (let i = 0; i < 300; i++) await bad.requestOnce(bad.buildRequest(0x003, addUdpTransport), 200);
    const elapsedMs = Date.now() - t0;
    await sleep(1200);
    const one = await bad.requestOnce(bad.buildRequest(0x003, addUdpTransport), 200);
    t.equal(one?.code, 401);
    await sleep(100);
    const logged = records(d.lines).filter((r) => r['msg'] === 'authentication failed');
    const most = 1 + 20 + Math.ceil(((elapsedMs + 1400) / 1000) * 10) + 1;
    t.comment(`${301} failures in ${elapsedMs} ms: ${logged.length} lines logged (at most ${most})`);
    t.ok(logged.length >= 20 && logged.length <= most, `${logged.length} lines within [20, ${most}]`);
    t.ok(
      logged.some((r) => typeof r['suppressed'] === 'number' && (r['suppressed'] as number) > 0),
      'a later line says how many were suppressed',
    );
    t.notOk(
      d.lines.some((l) => l.includes(WRONG)),
      'the password never appears in the log',
    );
    t.notOk(
      d.lines.some((l) => l.includes('wonderland')),
      'nor the configured one',
    );
  },
);

t.test('--log-format pretty prints human-readable lines; json is the default off a terminal', async (t) => {
  const port = await freePort();
  const proc = spawn(
    process.execPath,
    [BIN, '--listening-ip', '127.0.0.1', '--listening-port', String(port), '--log-format', 'pretty'],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  proc.stdout.on('data', (b: Buffer) => {
    out += b.toString();
  });
  const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));
  const deadline = Date.now() + 15000;
  while (!out.includes('turnpike started') && Date.now() < deadline) await sleep(50);
  proc.kill('SIGTERM');
  t.equal(await exited, 0, 'exits 0 on SIGTERM');
  const line = out.split('\n').find((l) => l.includes('turnpike started')) ?? '';
  t.ok(line !== '', 'the start line is there');
  t.notOk(line.trimStart().startsWith('{'), `not JSON: ${line}`);
  t.match(line, /INFO/, 'the level as a word');
  t.match(out, /listening: udp on 127\.0\.0\.1:\d+/, 'listeners readable');
});
