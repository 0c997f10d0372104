import { join } from 'node:path';
import t from 'tap';
import { type CliIo, main } from '../../src/cli.js';
import { defaults } from '../../src/config/schema.js';
import type { Config } from '../../src/config/types.js';
import { BindError, ConfigError } from '../../src/errors.js';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  /** Configs the daemon was started with. */
  started: Config[];
}

async function run(argv: string[], io: Partial<CliIo> = {}): Promise<Run> {
  const result: Run = { code: -1, stdout: '', stderr: '', started: [] };
  result.code = await main(argv, {
    env: {},
    stdout: (text) => {
      result.stdout += text;
    },
    stderr: (text) => {
      result.stderr += text;
    },
    runDaemon: async (config) => {
      result.started.push(config);
    },
    ...io,
  });
  return result;
}

t.test('check-config prints the effective configuration, redacted', async (t) => {
  const r = await run([
    'check-config',
    '--listening-port',
    '4000',
    '--user',
    'alice:hunter2',
    '--user',
    'bob:0x0123456789abcdef0123456789abcdef',
    '--use-auth-secret',
    '--static-auth-secret',
    'topsecret',
  ]);
  t.equal(r.code, 0);
  t.equal(r.stderr, '');
  t.same(r.started, [], 'the daemon is not started');
  const printed = JSON.parse(r.stdout) as Record<string, unknown>;
  t.equal(printed['listening-port'], 4000);
  t.same(printed['user'], ['alice:<redacted>', 'bob:<redacted>'], 'repeatable options accumulate, in order');
  t.same(printed['static-auth-secret'], ['<redacted>']);
  t.equal(printed['use-auth-secret'], true);
  for (const secret of ['hunter2', 'topsecret', '0123456789abcdef']) t.notMatch(r.stdout, secret);
});

t.test('turnpike and turnpike start run the daemon with the loaded config', async (t) => {
  let r = await run([]);
  t.equal(r.code, 0);
  t.same(r.started, [defaults()], 'no arguments: start with the defaults');
  t.ok(Object.isFrozen(r.started[0]), 'the daemon gets a frozen config');

  r = await run(['--listening-port', '4000', '--no-udp']);
  t.equal(r.code, 0);
  t.equal(r.started[0]?.listeningPort, 4000, 'options without a command go to start');
  t.equal(r.started[0]?.noUdp, true);

  r = await run(['start', '--listening-ip', '192.0.2.1', '--listening-ip', '::1', '--log-level', 'warn']);
  t.equal(r.code, 0);
  t.same(r.started[0]?.listeningIps, ['192.0.2.1', '::1']);
  t.equal(r.started[0]?.logLevel, 'warn');
});

t.test('--no-x flags: given means true, absent leaves the file value alone', async (t) => {
  const dir = t.testdir({
    'on.json': JSON.stringify({ 'no-udp': true, 'no-tcp': true, prometheus: true }),
    'off.json': JSON.stringify({ 'no-udp': false }),
  });
  let r = await run(['start', '-c', join(dir, 'on.json')]);
  t.equal(r.started[0]?.noUdp, true, 'file no-udp kept');
  t.equal(r.started[0]?.noTcp, true, 'file no-tcp kept');
  t.equal(r.started[0]?.noTls, false);
  t.equal(r.started[0]?.prometheus, true, 'file prometheus kept');

  r = await run(['start', '--config', join(dir, 'off.json'), '--no-udp', '--no-tls', '--prometheus']);
  t.equal(r.started[0]?.noUdp, true, '--no-udp overrides the file');
  t.equal(r.started[0]?.noTls, true);
  t.equal(r.started[0]?.noTcp, false);
  t.equal(r.started[0]?.prometheus, true);

  r = await run(['start', '--no-udp'], { env: { TURNPIKE_NO_UDP: 'false' } });
  t.equal(r.started[0]?.noUdp, true, '--no-udp overrides the environment');
  r = await run(['start'], { env: { TURNPIKE_NO_UDP: 'true' } });
  t.equal(r.started[0]?.noUdp, true, 'absent flag leaves the environment value');
});

t.test('precedence through the CLI: file < env < command line', async (t) => {
  const dir = t.testdir({ 'c.json': JSON.stringify({ 'min-port': 1000, 'max-port': 2000, realm: 'file' }) });
  const r = await run(['check-config', '-c', join(dir, 'c.json'), '--max-port', '3000'], {
    env: { TURNPIKE_MIN_PORT: '1500', TURNPIKE_MAX_PORT: '2500', TURNPIKE_REALM: 'env' },
  });
  t.equal(r.code, 0, r.stderr);
  const printed = JSON.parse(r.stdout) as Record<string, unknown>;
  t.equal(printed['min-port'], 1500);
  t.equal(printed['max-port'], 3000);
  t.equal(printed['realm'], 'env');
});

t.test('configuration errors exit 78 with the key on stderr', async (t) => {
  const dir = t.testdir({ 'bad.json': '{"min-port": 70000}', 'syntax.json': '{\n  "realm": "x",\n}' });
  const cases: [string[], RegExp][] = [
    [
      ['check-config', '--min-port', 'abc'],
      /^turnpike: configuration error: min-port: must be an integer 1-65535, got "abc"/,
    ],
    [['check-config', '-c', join(dir, 'bad.json')], /configuration error: min-port: .*got 70000/],
    [
      ['check-config', '-c', join(dir, 'syntax.json')],
      /configuration error: config: .*syntax\.json: invalid JSON at line 3, column 1/,
    ],
    [['check-config', '-c', join(dir, 'missing.json')], /configuration error: config: cannot read/],
    [['check-config', '--use-auth-secret'], /configuration error: static-auth-secret: /],
    [['start', '--cert', 'c.pem'], /configuration error: pkey: is required when cert is set/],
    [['--min-port', '2', '--max-port', '1'], /configuration error: min-port: must not exceed max-port/],
  ];
  for (const [argv, message] of cases) {
    const r = await run(argv);
    t.equal(r.code, 78, argv.join(' '));
    t.match(r.stderr, message, argv.join(' '));
    t.equal(r.stdout, '', 'nothing on stdout');
    t.same(r.started, [], 'daemon not started');
  }
  const r = await run(['check-config', '--static-auth-secret', ''], {});
  t.equal(r.code, 78);
});

t.test('command-line usage errors exit 78', async (t) => {
  for (const argv of [
    ['--bogus'],
    ['check-config', '--listening-port'],
    ['start', 'extra'],
    ['check-config', 'x'],
  ]) {
    const r = await run(argv);
    t.equal(r.code, 78, argv.join(' '));
    t.match(r.stderr, /error:/, argv.join(' '));
    t.same(r.started, []);
  }
});

t.test('help and version exit 0', async (t) => {
  let r = await run(['--help']);
  t.equal(r.code, 0);
  t.match(r.stdout, /check-config/);
  r = await run(['check-config', '--help']);
  t.equal(r.code, 0);
  for (const flag of [
    '--listening-port <port>',
    '--listening-ip <ip>',
    '--user <name:password>',
    '--no-udp',
    '-c, --config <file>',
  ]) {
    t.match(r.stdout, flag);
  }
  t.match(r.stdout, /TURNPIKE_LISTENING_PORT/);
  r = await run(['--version']);
  t.equal(r.code, 0);
  t.match(r.stdout, /^\d+\.\d+\.\d+/);
});

t.test('unknown TURNPIKE_ variables are warned about', async (t) => {
  const r = await run(['check-config'], { env: { TURNPIKE_LISTEN_PORT: '1' } });
  t.equal(r.code, 0);
  t.match(r.stderr, /warning: ignoring environment variable TURNPIKE_LISTEN_PORT/);
});

t.test('daemon failures: ConfigError exits 78, anything else 1', async (t) => {
  let r = await run([], {
    runDaemon: async () => {
      throw new ConfigError('cert', 'cannot read c.pem');
    },
  });
  t.equal(r.code, 78);
  t.match(r.stderr, /^turnpike: configuration error: cert: cannot read c\.pem\n$/);

  r = await run([], {
    runDaemon: async () => {
      throw new BindError('udp 0.0.0.0:3478: EADDRINUSE');
    },
  });
  t.equal(r.code, 1);
  t.match(r.stderr, /^turnpike: TURN_ERR_BIND: udp 0\.0\.0\.0:3478: EADDRINUSE\n$/);

  r = await run([], {
    runDaemon: async () => {
      throw new Error('boom');
    },
  });
  t.equal(r.code, 1);
  t.match(r.stderr, /^turnpike: fatal error: Error: boom/);
});
