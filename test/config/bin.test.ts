// Spawns the real entry point, bin/turnpike.js → dist/src/cli.js. `npm test` builds first.
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t, { type Test } from 'tap';
import { startDaemon } from '../fixtures/helpers/daemon.js';

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

/** A copy of the package layout under a temporary directory: package.json and bin/, no dist/. */
function unbuiltCopy(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'turnpike-unbuilt-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'bin'));
  copyFileSync(join(root, 'package.json'), join(dir, 'package.json'));
  for (const name of ['turnpike.js', 'turnpike-bench.js']) {
    copyFileSync(join(root, 'bin', name), join(dir, 'bin', name));
  }
  return dir;
}

function runNode(script: string, args: string[] = []) {
  return spawnSync(process.execPath, [script, ...args], {
    encoding: 'utf8',
    env: { PATH: process.env['PATH'] ?? '' },
    timeout: 30_000,
  });
}

t.test('an unbuilt checkout: one line saying what to run, exit 1', async (t) => {
  const dir = unbuiltCopy(t);
  let r = runNode(join(dir, 'bin', 'turnpike.js'), ['--version']);
  t.equal(r.status, 1);
  t.equal(r.stderr, `turnpike: not built yet: run "npm run build" (or "npm ci") in ${dir}\n`);
  t.equal(r.stdout, '');
  r = runNode(join(dir, 'bin', 'turnpike-bench.js'), ['--help']);
  t.equal(r.status, 1);
  t.equal(r.stderr, `turnpike-bench: not built yet: run "npm run build" (or "npm ci") in ${dir}\n`);
});

t.test('other failures to load are not taken for an unbuilt checkout', async (t) => {
  const dir = unbuiltCopy(t);
  mkdirSync(join(dir, 'dist', 'src', 'load-tool'), { recursive: true });
  // Built, but a dependency is missing (npm ci not run): the real error, not the hint.
  writeFileSync(join(dir, 'dist', 'src', 'cli.js'), "import 'turnpike-no-such-package';\n");
  writeFileSync(join(dir, 'dist', 'src', 'load-tool', 'main.js'), "import './no-such-module.js';\n");
  let r = runNode(join(dir, 'bin', 'turnpike.js'));
  t.equal(r.status, 1);
  t.match(r.stderr, /ERR_MODULE_NOT_FOUND|Cannot find package 'turnpike-no-such-package'/);
  t.notMatch(r.stderr, /not built yet/);
  r = runNode(join(dir, 'bin', 'turnpike-bench.js'));
  t.equal(r.status, 1);
  t.match(
    r.stderr,
    /Cannot find module '.*no-such-module\.js'/,
    'a module missing inside dist is reported as is',
  );
  t.notMatch(r.stderr, /not built yet/);

  // A working dist: the bin passes the arguments and the exit code through.
  writeFileSync(
    join(dir, 'dist', 'src', 'cli.js'),
    'export async function main(argv) { process.stdout.write(JSON.stringify(argv)); return 3; }\n',
  );
  r = runNode(join(dir, 'bin', 'turnpike.js'), ['check-config', '--no-udp']);
  t.equal(r.status, 3);
  t.equal(r.stdout, '["check-config","--no-udp"]');
});

t.test('the daemon logs settings without effect at warn before it starts', async (t) => {
  const d = await startDaemon([
    '--listening-ip',
    '127.0.0.1',
    '--realm',
    'example.test',
    '--no-tls',
    '--cert',
    'c.pem',
    '--pkey',
    'k.pem',
  ]);
  t.teardown(() => d.stop());
  const logged = d.lines.map((l) => JSON.parse(l) as { level: string; msg: string; warning?: string });
  const started = logged.findIndex((l) => l.msg === 'turnpike started');
  const warnings = logged.filter(
    (l, i) => l.msg === 'configuration warning' && l.level === 'warn' && i < started,
  );
  const texts = warnings.map((l) => l.warning ?? '');
  // The test helper adds a relay range and drain-timeout 0 (also without effect here): not listed.
  for (const expected of [
    'realm has no effect: TURN is off (no user, no use-auth-secret and no redis-url)',
    'cert has no effect: no-tls is set',
    'pkey has no effect: no-tls is set',
  ]) {
    t.ok(texts.includes(expected), expected);
  }
  for (const text of texts) t.match(text, /^[a-z0-9-]+ has no effect: /);
  t.equal(d.stderr(), '', 'nothing on stderr');
});
