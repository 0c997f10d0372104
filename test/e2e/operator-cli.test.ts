/**
 * `turnpike credentials`: the same JSON as GET /ice-servers, from the same configuration sources
 * as `start` (file, environment, options); command-line and configuration errors exit 78.
 */
import { execFile } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { main } from '../../src/cli.js';
import { BIN } from '../fixtures/helpers/daemon.js';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(argv: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  const r: Run = { code: -1, stdout: '', stderr: '' };
  r.code = await main(argv, {
    env,
    stdout: (s) => {
      r.stdout += s;
    },
    stderr: (s) => {
      r.stderr += s;
    },
    runDaemon: async () => {
      throw new Error('the daemon must not start');
    },
  });
  return r;
}

interface Ice {
  iceServers: { urls: string[]; username?: string; credential?: string }[];
  ttl: number;
  expiresAt: number;
}

const hmac = (secret: string, username: string): string =>
  createHmac('sha1', secret).update(username).digest('base64');

t.test('prints the RTCConfiguration for a user id', async (t) => {
  const before = Math.floor(Date.now() / 1000);
  const r = await run([
    'credentials',
    '--userid',
    'alice',
    '--ttl',
    '120',
    '--use-auth-secret',
    '--static-auth-secret',
    'first',
    '--static-auth-secret',
    'second',
    '--listening-port',
    '3479',
    '--public-host',
    'turn.example.org',
  ]);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stderr, '');
  const ice = JSON.parse(r.stdout) as Ice;
  t.equal(ice.ttl, 120);
  t.ok(ice.expiresAt >= before + 120 && ice.expiresAt <= before + 125);
  const username = `${ice.expiresAt}:alice`;
  t.same(ice.iceServers, [
    { urls: ['stun:turn.example.org:3479'] },
    {
      urls: ['turn:turn.example.org:3479?transport=udp', 'turn:turn.example.org:3479?transport=tcp'],
      username,
      credential: hmac('first', username),
    },
  ]);
  t.notMatch(r.stdout, /first|second/, 'no secret printed');
});

t.test('reads the configuration file and the environment like start', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'turnpike-cred-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'turnpike.json');
  writeFileSync(
    file,
    JSON.stringify({ 'use-auth-secret': true, 'external-ip': ['203.0.113.9'], 'no-tcp': true }),
  );
  const secretFile = join(dir, 'secret');
  writeFileSync(secretFile, 'from-a-file\n');
  const r = await run(['credentials', '-c', file, '--userid', 'bob', '--transport', 'udp'], {
    TURNPIKE_STATIC_AUTH_SECRET_FILE: secretFile,
  });
  t.equal(r.code, 0, r.stderr);
  const ice = JSON.parse(r.stdout) as Ice;
  t.equal(ice.ttl, 3600, 'default ttl');
  const username = `${ice.expiresAt}:bob`;
  t.same(ice.iceServers, [
    { urls: ['stun:203.0.113.9:3478'] },
    { urls: ['turn:203.0.113.9:3478?transport=udp'], username, credential: hmac('from-a-file', username) },
  ]);
});

t.test('errors exit 78', async (t) => {
  const rest = ['--use-auth-secret', '--static-auth-secret', 's'];
  for (const [argv, message] of [
    [['credentials', ...rest], /userid is required/],
    [['credentials', '--userid', 'a:b', ...rest], /userid may contain only/],
    [['credentials', '--userid', 'a', '--ttl', 'soon', ...rest], /ttl must be/],
    [['credentials', '--userid', 'a', '--ttl', '10', ...rest], /ttl must be 60-86400 seconds, got 10/],
    [['credentials', '--userid', 'a', '--ttl', '86401', ...rest], /ttl must be 60-86400 seconds, got 86401/],
    [['credentials', '--userid', 'a', '--transport', 'tls', ...rest], /none of the requested transports/],
    [['credentials', '--userid', 'a'], /TURN REST credentials are off/],
    [['credentials', '--userid', 'a', '--use-auth-secret'], /static-auth-secret/],
    [['credentials', '--userid', 'a', '--public-host', 'bad host', ...rest], /public-host/],
    [['credentials', '--userid', 'a', 'extra', ...rest], /too many arguments|unknown/],
  ] as const) {
    const r = await run([...argv]);
    t.equal(r.code, 78, argv.join(' '));
    t.match(r.stderr, message, argv.join(' '));
    t.equal(r.stdout, '');
  }
});

t.test('from the installed command', async (t) => {
  const out = await new Promise<{ code: number; stdout: string }>((resolve) => {
    execFile(
      process.execPath,
      [
        BIN,
        'credentials',
        '--userid',
        'cli',
        '--use-auth-secret',
        '--static-auth-secret',
        's',
        '--listening-ip',
        '127.0.0.1',
      ],
      (err, stdout) => resolve({ code: err === null ? 0 : Number(err.code), stdout }),
    );
  });
  t.equal(out.code, 0);
  const ice = JSON.parse(out.stdout) as Ice;
  t.equal(ice.iceServers[0]?.urls[0], 'stun:127.0.0.1:3478', 'public host: the listening address');
  t.match(ice.iceServers[1]?.username, /^\d+:cli$/);
});
