/**
 * `turnpike probe` end to end, spawned as operators run it (bin/turnpike.js), against turnpike
 * and against coturn 4.6.1 (Debian's /usr/bin/turnserver): every step passes over UDP and TCP with
 * static and REST credentials (exit 0, relay address printed), and each failure is named in plain
 * words with exit 1: wrong password ("credentials rejected"), a peer the server denies (403, hint
 * allowed-peer-ip), nothing listening ("no answer" / "connection refused"), a silent port (timeout),
 * no credentials.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { makeCertificate, testDir } from '../fixtures/helpers/certificates.js';
import { aliceOnLoopback, BIN, type Daemon, freePort, startDaemon } from '../fixtures/helpers/daemon.js';
import { freeUdpRange } from '../fixtures/helpers/turn-client.js';

const TURNSERVER = '/usr/bin/turnserver';
const REALM = 'example.test';
const SECRET = 'probe-rest-secret';
const coturnSkip =
  !existsSync(TURNSERVER) && !process.env['CI'] ? 'coturn not installed (CI installs it)' : false;

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

interface JsonReport {
  ok: boolean;
  steps: { name: string; ok: boolean; code?: number; problem?: string; hint?: string }[];
  mappedAddress?: string;
  relayedAddresses: string[];
  realm?: string;
  problems: string[];
}

function probe(args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, 'probe', ...args], { timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err === null ? 0 : typeof err.code === 'number' ? err.code : -1;
      resolve({ code, stdout, stderr });
    });
  });
}

const show = (r: Run): string => `exit ${r.code}\n${r.stdout}${r.stderr}`;

async function turnpike(t: Test, extra: string[] = []): Promise<Daemon> {
  // The relay range is startDaemon's, outside the ephemeral range: the probe's peer socket (an
  // ephemeral port on 127.0.0.1) must never fall inside it, or the server would let it through as
  // another of its own relays and the 403 test would see a PASS.
  const d = await startDaemon([
    ...aliceOnLoopback(REALM),
    '--use-auth-secret',
    '--static-auth-secret',
    SECRET,
    ...extra,
  ]);
  t.teardown(() => d.stop());
  return d;
}

/** Waits until a STUN Binding on 127.0.0.1:port is answered. */
async function waitForStun(port: number): Promise<void> {
  const s = createSocket('udp4');
  await new Promise<void>((resolve) => s.bind(0, '127.0.0.1', resolve));
  s.on('error', () => {});
  try {
    for (let attempt = 0; attempt < 100; attempt++) {
      const req = Buffer.alloc(20);
      req.writeUInt16BE(0x0001, 0);
      req.writeUInt32BE(0x2112a442, 4);
      randomBytes(12).copy(req, 8);
      const answered = new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), 100);
        s.once('message', () => {
          clearTimeout(timer);
          resolve(true);
        });
      });
      s.send(req, port, '127.0.0.1');
      if (await answered) return;
    }
    throw new Error(`nothing answers STUN on 127.0.0.1:${port}`);
  } finally {
    s.close();
  }
}

/** coturn on loopback with its database and pid file in a temporary directory; stopped by PID. */
async function coturn(t: Test, extra: string[] = []): Promise<number> {
  const dir = mkdtempSync(join(tmpdir(), 'turnpike-coturn-'));
  const port = await freePort();
  const relay = await freeUdpRange(1);
  const proc: ChildProcess = spawn(
    TURNSERVER,
    [
      '-n',
      '--listening-ip=127.0.0.1',
      `--listening-port=${port}`,
      '--relay-ip=127.0.0.1',
      `--min-port=${relay}`,
      `--max-port=${Math.min(65535, relay + 99)}`,
      `--realm=${REALM}`,
      '--user=alice:wonderland',
      '--lt-cred-mech',
      '--no-cli',
      '--no-tls',
      '--no-dtls',
      `--pidfile=${join(dir, 'pid')}`,
      `--userdb=${join(dir, 'db')}`,
      '--log-file=stdout',
      ...extra,
    ],
    { stdio: 'ignore' },
  );
  const exited = new Promise<void>((resolve) => proc.once('exit', () => resolve()));
  t.teardown(async () => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
    await exited;
    rmSync(dir, { recursive: true, force: true });
  });
  await waitForStun(port);
  return port;
}

t.test('against turnpike', async (t) => {
  const d = await turnpike(t, ['--allowed-peer-ip', '127.0.0.1']);

  t.test('UDP, static user: every step passes', async (t) => {
    const r = await probe([
      `turn:127.0.0.1:${d.port}?transport=udp`,
      '--user',
      'alice',
      '--password',
      'wonderland',
    ]);
    t.equal(r.code, 0, show(r));
    for (const step of ['binding', 'allocate', 'permission', 'channel-bind', 'relay', 'release']) {
      t.match(r.stdout, new RegExp(`PASS  ${step}`), step);
    }
    t.match(r.stdout, /^mapped address: 127\.0\.0\.1:\d+$/m);
    t.match(r.stdout, /^relay address:\s+127\.0\.0\.1:\d+$/m);
    t.match(r.stdout, /realm "example\.test"/);
    t.match(r.stdout, /^result: OK/m);
    t.equal(r.stderr, '');
  });

  t.test('TCP, REST credentials from --secret, JSON report', async (t) => {
    const r = await probe([
      `turn:127.0.0.1:${d.port}?transport=tcp`,
      '--secret',
      SECRET,
      '--userid',
      'ops',
      '--json',
    ]);
    t.equal(r.code, 0, show(r));
    const report = JSON.parse(r.stdout) as JsonReport & { username: string };
    t.equal(report.ok, true);
    t.same(
      report.steps.map((s) => [s.name, s.ok]),
      [
        ['connect', true],
        ['binding', true],
        ['allocate', true],
        ['permission', true],
        ['channel-bind', true],
        ['relay', true],
        ['release', true],
      ],
    );
    t.match(report.username, /^\d+:ops$/);
    t.match(report.relayedAddresses, [/^127\.0\.0\.1:\d+$/]);
    t.equal(report.realm, REALM);
    t.same(report.problems, []);
  });

  t.test('stun: URI: Binding only', async (t) => {
    const r = await probe([`stun:127.0.0.1:${d.port}`]);
    t.equal(r.code, 0, show(r));
    t.match(r.stdout, /PASS {2}binding/);
    t.notMatch(r.stdout, /allocate/);
  });

  t.test('wrong password: credentials rejected, exit 1', async (t) => {
    const r = await probe([`turn:127.0.0.1:${d.port}`, '--user', 'alice', '--password', 'looking-glass']);
    t.equal(r.code, 1, show(r));
    t.match(r.stdout, /FAIL {2}allocate/);
    t.match(r.stdout, /credentials rejected/);
    t.match(r.stdout, /hint: check the user name and password for realm "example\.test"/);
    t.match(r.stdout, /^result: FAILED \(1 problem\)/m);
    const rest = await probe([`turn:127.0.0.1:${d.port}`, '--secret', 'not-the-secret', '--json']);
    t.equal(rest.code, 1);
    const report = JSON.parse(rest.stdout) as JsonReport;
    t.match(report.steps.at(-1), {
      name: 'allocate',
      ok: false,
      code: 401,
      problem: /credentials rejected/,
      hint: /static-auth-secret/,
    });
  });

  t.test('no credentials: the server wants them', async (t) => {
    const r = await probe([`turn:127.0.0.1:${d.port}`]);
    t.equal(r.code, 1, show(r));
    t.match(r.stdout, /wants credentials/);
    t.match(r.stdout, /--user and --password, or --secret/);
  });
});

t.test('against turnpike without allowed-peer-ip: 403 explained', async (t) => {
  const d = await turnpike(t);
  const r = await probe([`turn:127.0.0.1:${d.port}`, '--user', 'alice', '--password', 'wonderland']);
  t.equal(r.code, 1, show(r));
  t.match(r.stdout, /PASS {2}allocate/);
  // turnpike lets a permission for its own relay address through (relay to relay), so the 403
  // comes at ChannelBind, whose peer port is outside the relay range.
  t.match(r.stdout, /FAIL {2}(permission|channel-bind)/);
  t.match(r.stdout, /403 Forbidden: the server refuses peer 127\.0\.0\.1 /);
  t.match(r.stdout, /allowed-peer-ip=127\.0\.0\.1/);
  t.match(r.stdout, /PASS {2}release/, 'the allocation is given back anyway');
});

t.test('against turnpike over TLS (turns:): certificate checked unless --insecure', async (t) => {
  const { cert, key } = makeCertificate(testDir(t, 'turnpike-probe-tls-'), 'turnpike-probe');
  const tlsPort = await freePort();
  await turnpike(t, [
    '--allowed-peer-ip',
    '127.0.0.1',
    '--cert',
    cert,
    '--pkey',
    key,
    '--tls-listening-port',
    String(tlsPort),
  ]);
  const uri = `turns:127.0.0.1:${tlsPort}?transport=tcp`;
  const strict = await probe([uri, '--user', 'alice', '--password', 'wonderland']);
  t.equal(strict.code, 1, show(strict));
  t.match(strict.stdout, /FAIL {2}connect/);
  t.match(strict.stdout, /self-signed|certificate/i);
  t.match(strict.stdout, /--insecure/);
  const insecure = await probe([uri, '--user', 'alice', '--password', 'wonderland', '--insecure']);
  t.equal(insecure.code, 0, show(insecure));
  t.match(insecure.stdout, /PASS {2}connect\s+connected to 127\.0\.0\.1:\d+ over tls/);
  t.match(insecure.stdout, /PASS {2}relay/);
});

t.test('nothing listening, or a silent port', async (t) => {
  const port = await freePort();
  const udp = await probe([`turn:127.0.0.1:${port}?transport=udp`, '--user', 'a', '--password', 'b']);
  t.equal(udp.code, 1, show(udp));
  t.match(udp.stdout, /no answer: nothing listens on 127\.0\.0\.1:\d+ over udp/);
  const tcp = await probe([`turn:127.0.0.1:${port}?transport=tcp`, '--user', 'a', '--password', 'b']);
  t.equal(tcp.code, 1, show(tcp));
  t.match(tcp.stdout, /FAIL {2}connect/);
  t.match(tcp.stdout, /connection refused: nothing listens on 127\.0\.0\.1:\d+ over tcp/);

  // A socket that swallows everything: only the timeout can tell.
  const sink = createSocket('udp4');
  await new Promise<void>((resolve) => sink.bind(0, '127.0.0.1', resolve));
  t.teardown(() => sink.close());
  const started = Date.now();
  const silent = await probe([
    `turn:127.0.0.1:${sink.address().port}`,
    '--user',
    'a',
    '--password',
    'b',
    '--timeout',
    '400',
  ]);
  t.equal(silent.code, 1, show(silent));
  t.match(silent.stdout, /no answer from 127\.0\.0\.1:\d+ over udp to Binding nor Allocate within 400 ms/);
  t.ok(Date.now() - started < 10_000, 'bounded by the timeout');
});

t.test('command-line errors exit 78', async (t) => {
  for (const args of [
    ['http://example.org'],
    ['turn:127.0.0.1:3478', '--user', 'a'],
    ['turn:127.0.0.1:3478', '--user', 'a', '--password', 'b', '--secret', 'c'],
    ['turn:127.0.0.1:3478', '--timeout', 'soon'],
    ['turn:127.0.0.1:3478', '--peer-address', 'localhost'],
    ['turn:127.0.0.1:3478', '--secret', 's', '--userid', 'a:b'],
  ]) {
    const r = await probe(args);
    t.equal(r.code, 78, args.join(' '));
    t.match(r.stderr, /turnpike probe: /);
  }
});

t.test('against coturn 4.6.1', { skip: coturnSkip }, async (t) => {
  const port = await coturn(t, ['--allow-loopback-peers']);
  for (const transport of ['udp', 'tcp']) {
    const r = await probe([
      `turn:127.0.0.1:${port}?transport=${transport}`,
      '--user',
      'alice',
      '--password',
      'wonderland',
    ]);
    t.equal(r.code, 0, `${transport}: ${show(r)}`);
    t.match(r.stdout, /^relay address:\s+127\.0\.0\.1:\d+$/m, transport);
    t.match(r.stdout, /PASS {2}relay/, transport);
  }
  const wrong = await probe([`turn:127.0.0.1:${port}`, '--user', 'alice', '--password', 'nope']);
  t.equal(wrong.code, 1, show(wrong));
  t.match(wrong.stdout, /credentials rejected/);
});

t.test('against coturn without --allow-loopback-peers: 403 explained', { skip: coturnSkip }, async (t) => {
  const port = await coturn(t);
  const r = await probe([`turn:127.0.0.1:${port}`, '--user', 'alice', '--password', 'wonderland']);
  t.equal(r.code, 1, show(r));
  t.match(r.stdout, /FAIL {2}permission/);
  t.match(r.stdout, /403 Forbidden/);
  t.match(r.stdout, /--allow-loopback-peers/);
});
