// Spawns the real entry point, bin/turnpike.js → dist/src/cli.js. `npm test` builds first.
import { spawnSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const root = fileURLToPath(new URL('../../', import.meta.url));
const bin = join(root, 'bin', 'turnpike.js');

function turnpike(args: string[], env: Record<string, string> = {}) {
  // A clean environment: no TURNPIKE_* leaks in from the caller.
  return spawnSync(process.execPath, [bin, ...args], {
    cwd: root,
    encoding: 'utf8',
    env: { PATH: process.env['PATH'] ?? '', ...env },
    timeout: 30_000,
  });
}

t.test('bin/turnpike.js is an executable node script', async (t) => {
  t.ok(statSync(bin).mode & 0o111, 'executable bit set');
});

t.test('check-config: valid configuration exits 0 with redacted JSON', async (t) => {
  const dir = t.testdir({
    'c.json': JSON.stringify({
      $schema: './conf/turnpike.schema.json',
      realm: 'example.org',
      user: ['alice:hunter2'],
      'use-auth-secret': true,
    }),
    secret: 'file-secret-value\n',
  });
  const r = turnpike(['check-config', '-c', join(dir, 'c.json'), '--no-udp'], {
    TURNPIKE_STATIC_AUTH_SECRET_FILE: join(dir, 'secret'),
  });
  t.equal(r.status, 0, r.stderr);
  const printed = JSON.parse(r.stdout) as Record<string, unknown>;
  t.equal(printed['realm'], 'example.org');
  t.equal(printed['no-udp'], true);
  t.same(printed['user'], ['alice:<redacted>']);
  t.same(printed['static-auth-secret'], ['<redacted>']);
  t.notMatch(r.stdout + r.stderr, /hunter2|file-secret-value/);
});

t.test('check-config: the example file is valid', async (t) => {
  const r = turnpike(['check-config', '--config', 'turnserver.example.json']);
  t.equal(r.status, 0, r.stderr);
  t.equal(r.stderr, '');
});

t.test('check-config: errors exit 78 and name the key', async (t) => {
  const dir = t.testdir({ 'c.json': '{"listening-port": 3478, "min-prot": 1}' });
  let r = turnpike(['check-config', '--min-port', 'abc']);
  t.equal(r.status, 78);
  t.equal(r.stdout, '');
  t.match(r.stderr, /^turnpike: configuration error: min-port: must be an integer 1-65535, got "abc"/);

  r = turnpike(['check-config', '-c', join(dir, 'c.json')]);
  t.equal(r.status, 78);
  t.match(r.stderr, /configuration error: min-prot: unknown configuration key \(did you mean min-port\?\)/);

  r = turnpike(['check-config'], { TURNPIKE_MAX_PORT: '70000' });
  t.equal(r.status, 78);
  t.match(r.stderr, /max-port: .*TURNPIKE_MAX_PORT/);

  r = turnpike(['check-config', '--user', 'alice:0xhunter2']);
  t.equal(r.status, 78);
  t.match(r.stderr, /configuration error: user: /);
  t.notMatch(r.stderr, /hunter2/);

  r = turnpike(['check-config', '--no-such-option']);
  t.equal(r.status, 78);
  t.match(r.stderr, /unknown option '--no-such-option'/);
});

t.test('--version', async (t) => {
  const r = turnpike(['--version']);
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /^\d+\.\d+\.\d+\n$/);
});
