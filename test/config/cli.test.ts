import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import t from 'tap';
import { defaults } from '../../src/config/schema.js';
import { BindError, ConfigError } from '../../src/errors.js';
import { makeCertificate } from '../fixtures/helpers/certificates.js';
import { runCli } from '../fixtures/helpers/cli.js';

const run = runCli;

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
    'on.json': JSON.stringify({ 'no-udp': true, 'no-tls': true, prometheus: true }),
    'off.json': JSON.stringify({ 'no-udp': false }),
    'none.json': JSON.stringify({ 'no-udp': true, 'no-tcp': true }),
  });
  let r = await run(['start', '-c', join(dir, 'on.json')]);
  t.equal(r.started[0]?.noUdp, true, 'file no-udp kept');
  t.equal(r.started[0]?.noTls, true, 'file no-tls kept');
  t.equal(r.started[0]?.noTcp, false);
  t.equal(r.started[0]?.prometheus, true, 'file prometheus kept');

  r = await run(['start', '-c', join(dir, 'none.json')]);
  t.equal(r.code, 78, 'file no-udp and no-tcp kept: nothing to listen on');
  t.match(r.stderr, /configuration error: no-udp: no listener enabled/);
  t.same(r.started, []);

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

t.test('start and check-config refuse the same configurations, with the same message', async (t) => {
  const dir = t.testdir({ 'garbage.pem': 'not a PEM file\n' });
  const good = makeCertificate(dir, 'good');
  const other = makeCertificate(dir, 'other');
  const encryptedKey = join(dir, 'encrypted.key');
  execFileSync('openssl', ['pkey', '-in', good.key, '-aes256', '-passout', 'pass:x', '-out', encryptedKey], {
    stdio: 'ignore',
    timeout: 10_000,
  });
  const tls = (cert: string, key: string): string[] => ['--cert', cert, '--pkey', key];
  const cases: [string, string[], RegExp][] = [
    [
      'no listener',
      ['--no-udp', '--no-tcp'],
      /^turnpike: configuration error: no-udp: no listener enabled: no-udp and no-tcp are both set and TLS is off \(cert and pkey are not set\)\n$/,
    ],
    [
      'no listener: TLS switched off',
      ['--no-udp', '--no-tcp', '--no-tls', ...tls(good.cert, good.key)],
      /^turnpike: configuration error: no-udp: no listener enabled: .*\(no-tls is set\)\n$/,
    ],
    [
      'missing certificate file',
      tls(join(dir, 'missing.crt'), good.key),
      /^turnpike: configuration error: cert: cannot read .*missing\.crt: ENOENT/,
    ],
    [
      'missing key file',
      tls(good.cert, join(dir, 'missing.key')),
      /^turnpike: configuration error: pkey: cannot read .*missing\.key: ENOENT/,
    ],
    [
      'not a certificate',
      tls(join(dir, 'garbage.pem'), good.key),
      /^turnpike: configuration error: cert: .*garbage\.pem holds no valid PEM certificate/,
    ],
    [
      'a certificate as the key',
      tls(good.cert, good.cert),
      /^turnpike: configuration error: pkey: .*good\.crt holds no valid PEM private key/,
    ],
    [
      'an encrypted key',
      tls(good.cert, encryptedKey),
      /^turnpike: configuration error: pkey: .*encrypted\.key is encrypted/,
    ],
    [
      "a key that is not the certificate's",
      tls(good.cert, other.key),
      /^turnpike: configuration error: pkey: .*other\.key is not the private key of the certificate in .*good\.crt\n$/,
    ],
    [
      'the same address twice',
      ['--listening-ip', '::1', '--listening-ip', '0:0:0:0:0:0:0:1'],
      /^turnpike: configuration error: listening-ip: ::1 is listed twice\n$/,
    ],
    [
      'a wildcard and an address it covers',
      ['--listening-ip', '127.0.0.1', '--listening-ip', '0.0.0.0'],
      /^turnpike: configuration error: listening-ip: 0\.0\.0\.0 already covers 127\.0\.0\.1/,
    ],
    [
      'an IPv4-mapped address',
      ['--listening-ip', '::ffff:127.0.0.1'],
      /^turnpike: configuration error: listening-ip: ::ffff:127\.0\.0\.1 is an IPv4-mapped IPv6 address.* 127\.0\.0\.1\n$/,
    ],
    [
      'the HTTP port on the TCP port',
      ['--listening-ip', '127.0.0.1', '--prometheus', '--prometheus-port', '3478'],
      /^turnpike: configuration error: prometheus-port: 3478 is also listening-port, and the TCP listener on 127\.0\.0\.1 takes it/,
    ],
  ];
  for (const [name, argv, message] of cases) {
    const check = await run(['check-config', ...argv]);
    const start = await run(['start', ...argv]);
    const implicit = await run(argv);
    t.equal(check.code, 78, `${name}: check-config exits 78`);
    t.match(check.stderr, message, `${name}: check-config message`);
    t.equal(check.stdout, '', `${name}: nothing printed`);
    for (const r of [start, implicit]) {
      t.equal(r.code, 78, `${name}: start exits 78`);
      t.equal(r.stderr, check.stderr, `${name}: start says what check-config says`);
      t.same(r.started, [], `${name}: the daemon is not started`);
    }
  }

  // The good pair passes; with no-tls the files are not read at all (the daemon does not read them).
  const ok = await run(['check-config', ...tls(good.cert, good.key)]);
  t.equal(ok.code, 0, ok.stderr);
  t.equal(ok.stderr, '');
  const started = await run(['start', ...tls(good.cert, good.key)]);
  t.equal(started.code, 0, started.stderr);
  t.equal(started.started.length, 1);
  const off = await run(['check-config', '--no-tls', ...tls(join(dir, 'missing.crt'), join(dir, 'x.key'))]);
  t.equal(off.code, 0, off.stderr);
});

t.test('settings without effect: warnings on stderr (check-config), to the daemon (start)', async (t) => {
  const argv = ['--realm', 'example.org', '--api-token', 'token-123456', '--no-tls', '--cert', 'c.pem'];
  const argvWithKey = [...argv, '--pkey', 'k.pem'];
  const check = await run(['check-config', ...argvWithKey]);
  t.equal(check.code, 0, 'warnings do not fail the check');
  const expected = [
    'realm has no effect: TURN is off (no user, no use-auth-secret and no redis-url)',
    'api-token has no effect: the HTTP listener is off (prometheus is not set)',
    'cert has no effect: no-tls is set',
    'pkey has no effect: no-tls is set',
  ];
  t.equal(check.stderr, expected.map((w) => `turnpike: warning: ${w}\n`).join(''));
  t.equal((JSON.parse(check.stdout) as Record<string, unknown>)['realm'], 'example.org');

  const given: (readonly string[] | undefined)[] = [];
  const start = await run(['start', ...argvWithKey], {
    runDaemon: async (_config, options) => {
      given.push(options?.warnings);
    },
  });
  t.equal(start.code, 0);
  t.equal(start.stderr, '', 'start leaves them to the daemon log');
  t.same(given, [expected]);

  const clean = await run(['check-config', '--user', 'alice:wonderland', '--realm', 'example.org']);
  t.equal(clean.stderr, '', 'realm with TURN on: no warning');
});

t.test('an unknown command is named as such', async (t) => {
  for (const word of ['bogus-cmd', 'chek-config', 'stop']) {
    const r = await run([word, '--listening-port', '3478']);
    t.equal(r.code, 78, word);
    t.equal(
      r.stderr,
      `turnpike: unknown command '${word}' (commands: start, check-config, credentials, import-coturn, probe; see turnpike --help)\n`,
    );
    t.equal(r.stdout, '');
    t.same(r.started, []);
  }
  let r = await run(['--listening-port', '3478']);
  t.equal(r.code, 0, 'options only: start');
  t.equal(r.started[0]?.listeningPort, 3478);
  r = await run(['start', '--listening-port', '3479']);
  t.equal(r.code, 0, 'start by name');
  t.equal(r.started[0]?.listeningPort, 3479);
  r = await run(['help']);
  t.equal(r.code, 0, 'help is a command');
  t.match(r.stdout, /check-config/);
});
