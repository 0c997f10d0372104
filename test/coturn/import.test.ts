/**
 * import-coturn without sockets: the parser, the translation of each kind of option, the refusals
 * (exit 78, naming the key and the line), and inputs nobody here wrote: Debian's shipped
 * /etc/turnserver.conf and every option coturn's example file and `turnserver --help` document.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { configFromObject } from '../../src/config/load.js';
import { compatArgs } from '../../src/coturn/cli-spellings.js';
import { parseCoturnConfig } from '../../src/coturn/parse.js';
import { RULES } from '../../src/coturn/rules.js';
import { type CoturnImport, translateCoturn } from '../../src/coturn/translate.js';
import { ConfigError } from '../../src/errors.js';
import { testDir } from '../fixtures/helpers/certificates.js';
import { runCli } from '../fixtures/helpers/cli.js';

const DEBIAN_CONF = '/etc/turnserver.conf';
const EXAMPLE_CONF = '/usr/share/doc/coturn/examples/etc/turnserver.conf';
const TURNSERVER = '/usr/bin/turnserver';
const noCoturn =
  !existsSync(DEBIAN_CONF) && !process.env['CI'] ? 'coturn not installed (CI installs it)' : false;

/** Set on every import with TURN on: coturn's clients may use RFC 5766 channel numbers. */
const RFC5766 = { 'rfc5766-channel-numbers': true };

function translate(text: string): CoturnImport {
  return translateCoturn(parseCoturnConfig(text), 'test.conf');
}

function refusal(text: string): ConfigError {
  try {
    translate(text);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('translated without an error');
}

t.test('the parser: key=value, blanks, quotes, bare flags, dashes, comments, repeats', async (t) => {
  const parsed = parseCoturnConfig(
    [
      '\uFEFF# a comment',
      '   # an indented comment',
      '',
      'listening-port=3478',
      'realm = "example.org"',
      "user='alice:pa#ss word'",
      'new-log-timestamp-format "%FT%T%z"',
      '--fingerprint\r',
      '-lt-cred-mech',
      '  no-cli  ',
      'user=bob:x=y',
      'static-auth-secret north # a comment after a value is part of it',
    ].join('\n'),
  );
  t.same(parsed.errors, []);
  t.same(
    parsed.entries.map((e) => [e.line, e.key, e.value]),
    [
      [4, 'listening-port', '3478'],
      [5, 'realm', 'example.org'],
      [6, 'user', 'alice:pa#ss word'],
      [7, 'new-log-timestamp-format', '%FT%T%z'],
      [8, 'fingerprint', undefined],
      [9, 'lt-cred-mech', undefined],
      [10, 'no-cli', undefined],
      [11, 'user', 'bob:x=y'],
      [12, 'static-auth-secret', 'north # a comment after a value is part of it'],
    ],
  );
  const bad = parseCoturnConfig('listening-port=1\n=3478\n');
  t.same(
    bad.errors.map((e) => e.line),
    [2],
    'a line without an option name is an error, with its line',
  );
});

t.test('options become turnpike keys; lists accumulate; the last scalar wins', async (t) => {
  const r = translate(
    [
      'listening-port=3479',
      'listening-ip=192.0.2.10',
      'listening-ip=2001:db8::10',
      'relay-ip=192.0.2.11',
      'external-ip=198.51.100.1/192.0.2.11',
      'min-port=40000',
      'max-port=40999',
      'realm=example.org',
      'user=alice:wonderland',
      'user=bob:0x0123456789abcdef0123456789abcdef',
      'use-auth-secret',
      'static-auth-secret=north',
      'user-quota=5',
      'total-quota=100',
      'stale-nonce',
      'max-allocate-lifetime=1800',
      'channel-lifetime=600',
      'permission-lifetime=300',
      'no-tcp',
      'keep-address-family',
      'Verbose',
      'prometheus',
      'alternate-server=203.0.113.9:3478',
      'total-quota=200',
    ].join('\n'),
  );
  t.same(r.config, {
    'listening-port': 3479,
    'listening-ip': ['192.0.2.10', '2001:db8::10'],
    realm: 'example.org',
    user: ['alice:wonderland', 'bob:0x0123456789abcdef0123456789abcdef'],
    'use-auth-secret': true,
    'static-auth-secret': ['north'],
    'min-port': 40000,
    'max-port': 40999,
    'relay-ip': ['192.0.2.11'],
    'external-ip': ['198.51.100.1/192.0.2.11'],
    'user-quota': 5,
    'total-quota': 200,
    'max-allocate-lifetime': 1800,
    'allocation-default-address-family': 'keep',
    'channel-lifetime': 600,
    'permission-lifetime': 300,
    'stale-nonce': 600,
    prometheus: true,
    'alternate-server': ['203.0.113.9:3478'],
    'log-level': 'debug',
    'no-tcp': true,
    'rfc5766-channel-numbers': true,
  });
  t.ok(configFromObject(r.config), 'the result loads');
  t.ok(r.hasSecrets);
  t.notOk(
    r.translated.some((n) => /wonderland|north|0123456789abcdef/.test(n.text)),
    'the report never shows a secret',
  );
  t.ok(
    r.differences.some((n) => n.option === 'total-quota' && n.lines.join() === '14,24'),
    'a repeated scalar is reported with both lines',
  );
  t.ok(
    r.differences.some((n) => n.option === 'alternate-server' && /drains/.test(n.text)),
    'alternate-server: turnpike redirects only while draining',
  );
  t.ok(r.differences.some((n) => n.option === 'prometheus' && /127\.0\.0\.1/.test(n.text)));
});

t.test('harmless and default-on options are accepted, each with what turnpike does', async (t) => {
  const flags = ['lt-cred-mech', 'fingerprint', 'no-cli', 'no-dtls', 'verbose', 'no-tlsv1', 'no-tlsv1_1'];
  const r = translate(flags.join('\n'));
  t.same(r.config, {});
  t.same(
    r.accepted.map((n) => n.option),
    flags,
  );
  for (const n of r.accepted) t.ok(n.text.length > 20, `${n.option}: ${n.text}`);
  t.same(r.unsupported, []);
});

t.test('what has no equivalent is reported with its reason, security settings flagged', async (t) => {
  const r = translate(
    [
      'cli-password=qwerty',
      'oauth',
      'psql-userdb="host=db dbname=turn"',
      'no-tlsv1_2',
      'secure-stun',
      'cipher-list="DEFAULT"',
    ].join('\n'),
  );
  t.same(r.config, {});
  t.same(
    r.unsupported.map((n) => [n.option, n.weaker]),
    [
      ['cli-password', false],
      ['oauth', false],
      ['psql-userdb', false],
      ['no-tlsv1_2', true],
      ['secure-stun', true],
      ['cipher-list', false],
    ],
  );
  t.match(r.unsupported[0]?.text, /operator API/);
  t.match(r.unsupported[1]?.text, /RFC 7635/);
  t.match(r.unsupported[2]?.text, /user/);
});

t.test('max-bps and bps-capacity: per direction in coturn, both directions in turnpike', async (t) => {
  const r = translate('max-bps=64000\nbps-capacity=0\n');
  t.same(r.config, { 'max-bps': 128000, 'bps-capacity': 0 });
  t.same(r.unsupported, []);
  t.match(
    r.differences.find((n) => n.option === 'max-bps')?.text,
    /each direction to 64000 bytes\/s; .* both directions together, so max-bps is 128000/,
  );
  t.notOk(
    r.differences.some((n) => n.option === 'bps-capacity'),
    '0 (unlimited) needs no note',
  );
});

t.test('never an open relay, never a lost deny', async (t) => {
  await t.test('no-auth: TURN stays off', async (t) => {
    const r = translate('no-auth\nrealm=example.org\n');
    t.same(r.config, { realm: 'example.org' });
    t.match(r.unsupported[0], { option: 'no-auth', text: /never relays without credentials/ });
    t.ok(
      r.differences.some((n) => /refuses TURN/.test(n.text)),
      'says TURN is disabled',
    );
  });
  await t.test('stun-only: users and secrets are left out', async (t) => {
    const r = translate('stun-only\nuser=alice:pw\nuse-auth-secret\nstatic-auth-secret=s\n');
    t.same(r.config, {});
    t.notOk(r.hasSecrets);
    t.ok(
      r.differences.some(
        (n) => n.option === 'stun-only' && /user, static-auth-secret, use-auth-secret/.test(n.text),
      ),
    );
  });
  await t.test('denied-peer-ip lines are kept, redundant ones said to be', async (t) => {
    const r = translate('denied-peer-ip=10.0.0.0-10.255.255.255\ndenied-peer-ip=83.166.64.0-83.166.95.255\n');
    t.same(r.config['denied-peer-ip'], ['10.0.0.0-10.255.255.255', '83.166.64.0-83.166.95.255']);
    t.same(
      r.differences.filter((n) => /built-in deny list/.test(n.text)).map((n) => n.lines),
      [[1]],
      'only the private range is already in the built-in list',
    );
    t.ok(
      r.differences.some((n) => /allowed-peer-ip line/.test(n.text)),
      'the peer policy difference',
    );
  });
  await t.test(
    'no-multicast-peers is kept by the built-in policy, or flagged when an allow opens it',
    async (t) => {
      const kept = translate('no-multicast-peers\n');
      t.match(kept.accepted[0], { option: 'no-multicast-peers', text: /kept/ });
      const opened = translate('no-multicast-peers\nallowed-peer-ip=224.0.0.0-239.255.255.255\n');
      t.match(opened.unsupported[0], { option: 'no-multicast-peers', weaker: true });
    },
  );
  await t.test('allow-loopback-peers opens loopback, and says so', async (t) => {
    const r = translate('allow-loopback-peers\n');
    t.same(r.config['allowed-peer-ip'], ['127.0.0.0/8', '::1']);
    t.ok(r.differences.some((n) => n.option === 'allow-loopback-peers'));
  });
  await t.test('0x keys without a realm: the realm they were made with is asked for', async (t) => {
    const r = translate('user=bob:0x0123456789abcdef0123456789abcdef\n');
    t.ok(r.differences.some((n) => n.option === 'user' && /realm/.test(n.text)));
  });
});

t.test('refusals name the key and the line', async (t) => {
  const cases: [string, string, RegExp][] = [
    ['realm=a\nlisten-port=3478\n', 'listen-port', /not a coturn option.*test\.conf line 2/],
    ['listening-port=http\n', 'listening-port', /whole number \(test\.conf line 1\)/],
    ['min-port=70000\n', 'min-port', /1-65535.*line 1/],
    ['listening-ip=eth0\n', 'listening-ip', /line 1/],
    ['denied-peer-ip=not-an-ip\n', 'denied-peer-ip', /line 1/],
    ['no-udp-relay\n', 'no-udp-relay', /always relays UDP/],
    ['no-tcp=maybe\n', 'no-tcp', /flag/],
    ['realm\n', 'realm', /needs a value/],
    ['min-port=50000\nmax-port=40000\n', 'min-port', /from line 1/],
    ['user=alice\n', 'user', /line 1/],
    ['realm=a\n=b\n', 'config', /line 2/],
  ];
  for (const [text, key, message] of cases) {
    const err = refusal(text);
    t.equal(err.key, key, `${JSON.stringify(text)}: key ${key}`);
    t.match(err.message, message);
  }
});

t.test("Debian's shipped /etc/turnserver.conf", { skip: noCoturn }, async (t) => {
  const text = readFileSync(DEBIAN_CONF, 'utf8');
  const parsed = parseCoturnConfig(text);
  t.same(parsed.errors, []);
  t.ok(parsed.entries.length > 0, `${parsed.entries.length} option lines`);
  const r = translateCoturn(parsed, DEBIAN_CONF);
  const reported = [...r.translated, ...r.accepted, ...r.unsupported].flatMap((n) => n.lines);
  for (const entry of parsed.entries)
    t.ok(reported.includes(entry.line), `line ${entry.line} (${entry.key}) is reported`);
  t.ok(configFromObject(r.config, DEBIAN_CONF), 'loads as a turnpike configuration');
  t.notOk(r.hasSecrets);
  t.ok(
    r.differences.some((n) => /refuses TURN/.test(n.text)),
    'no users in the shipped file: TURN disabled, not an open relay',
  );
});

/** Option names of coturn's example turnserver.conf, commented out or not (`#name`, `#name=value`). */
function exampleOptions(text: string): Set<string> {
  const names = new Set<string>();
  for (const line of text.split('\n')) {
    const m = /^#?\s?([a-zA-Z][\w-]*)(=|\s*$| ")/.exec(line);
    if (m !== null && (line.startsWith('#') ? /^#\s?[a-zA-Z][\w-]*(=.*| ".*")?$/.test(line) : true))
      names.add(m[1]!);
  }
  return names;
}

t.test(
  "every option of coturn's example turnserver.conf and --help has a rule",
  { skip: noCoturn },
  async (t) => {
    const file = existsSync(EXAMPLE_CONF) ? EXAMPLE_CONF : DEBIAN_CONF;
    const documented = [...exampleOptions(readFileSync(file, 'utf8'))].filter(
      (name) =>
        // Words of prose that happen to stand alone on a comment line are not options.
        /-/.test(name) ||
        Object.hasOwn(RULES, name) ||
        ['realm', 'user', 'verbose', 'fingerprint', 'prometheus', 'oauth'].includes(name),
    );
    t.ok(documented.length > 80, `${documented.length} options in ${file}`);
    for (const name of documented) t.ok(Object.hasOwn(RULES, name), `${name} has a rule`);
    if (existsSync(TURNSERVER)) {
      const help = execFileSync(TURNSERVER, ['-h'], { encoding: 'utf8', timeout: 10_000 }).toString();
      const long = new Set([...help.matchAll(/--([a-zA-Z][\w-]*)/g)].map((m) => m[1]!));
      long.delete('version');
      for (const name of long) t.ok(Object.hasOwn(RULES, name), `--${name} (turnserver -h) has a rule`);
    }
  },
);

t.test('every coturn option line of an all-options file is accounted for', { skip: noCoturn }, async (t) => {
  // The example file with every commented option uncommented, less the one turnpike refuses
  // (no-udp-relay) and the ones that would make the result unloadable by design (placeholders).
  const file = existsSync(EXAMPLE_CONF) ? EXAMPLE_CONF : DEBIAN_CONF;
  const names = new Set(Object.keys(RULES));
  const lines = readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => /^#[a-zA-Z][\w-]*(=.*| ".*")?$/.test(l) && names.has(/^#([\w-]+)/.exec(l)![1]!))
    .map((l) => l.slice(1));
  const parsed = parseCoturnConfig(lines.join('\n'));
  t.same(parsed.errors, []);
  for (const entry of parsed.entries) {
    const rule = RULES[entry.key]!;
    t.ok(rule, entry.key);
  }
  t.ok(parsed.entries.length > 100, `${parsed.entries.length} option lines`);
});

t.test("coturn's command-line spellings", async (t) => {
  const r = compatArgs([
    '-L',
    '127.0.0.1',
    '-p3479',
    '-r',
    'example.org',
    '--lt-cred-mech',
    '-f',
    '--realm',
    '-p',
  ]);
  t.same(r.argv, [
    '--listening-ip',
    '127.0.0.1',
    '--listening-port',
    '3479',
    '--realm',
    'example.org',
    '--realm',
    '-p',
  ]);
  t.equal(r.notes.length, 5);
  t.match(r.notes[0], /-L is accepted for compatibility with coturn: it means --listening-ip/);
  t.match(r.notes[3], /--lt-cred-mech .* changes nothing/);
  t.same(compatArgs(['--no-udp', '--', '-p']).argv, ['--no-udp', '--', '-p'], 'nothing after --');
});

t.test('turnpike import-coturn: JSON on stdout or -o, report on stderr, exit 78 on bad input', async (t) => {
  const dir = testDir(t);
  const conf = join(dir, 'turnserver.conf');
  writeFileSync(
    conf,
    'listening-port=3479\nlt-cred-mech\nrealm=example.org\nuser=alice:wonderland\ncli-password=x\n',
  );
  const r = await runCli(['import-coturn', conf]);
  t.equal(r.code, 0);
  t.same(JSON.parse(r.stdout), {
    'listening-port': 3479,
    realm: 'example.org',
    user: ['alice:wonderland'],
    ...RFC5766,
  });
  t.match(r.stderr, /Translated:\n {2}line 1: listening-port -> "listening-port": 3479/);
  t.match(r.stderr, /Accepted, nothing to set:\n {2}line 2: lt-cred-mech/);
  t.match(r.stderr, /No equivalent, not imported:\n {2}line 5: cli-password/);
  t.match(r.stderr, /Different in turnpike:/);
  t.match(r.stderr, /Secrets:/);
  t.notMatch(r.stderr, /wonderland/);

  const out = join(dir, 'turnserver.json');
  const w = await runCli(['import-coturn', conf, '-o', out]);
  t.equal(w.code, 0);
  t.equal(w.stdout, '');
  t.equal(statSync(out).mode & 0o777, 0o600, 'holds a password: root only');
  const checked = await runCli(['check-config', '-c', out]);
  t.equal(checked.code, 0, 'check-config accepts it');

  writeFileSync(conf, 'listening-port=3479\nno-such-option=1\n');
  const bad = await runCli(['import-coturn', conf]);
  t.equal(bad.code, 78);
  t.match(bad.stderr, /no-such-option: .*line 2/);
  t.equal(bad.stdout, '', 'nothing written');
  const missing = await runCli(['import-coturn', join(dir, 'absent.conf')]);
  t.equal(missing.code, 78);
  t.match(missing.stderr, /cannot read/);
});

t.test('start and check-config accept coturn spellings and say so', async (t) => {
  const r = await runCli([
    'check-config',
    '-L',
    '127.0.0.1',
    '-p',
    '3479',
    '-r',
    'example.org',
    '--lt-cred-mech',
    '--fingerprint',
  ]);
  t.equal(r.code, 0);
  const printed = JSON.parse(r.stdout) as Record<string, unknown>;
  t.same(printed['listening-ip'], ['127.0.0.1']);
  t.equal(printed['listening-port'], 3479);
  t.equal(printed['realm'], 'example.org');
  t.match(r.stderr, /note: -L is accepted for compatibility with coturn/);
  t.match(r.stderr, /note: --fingerprint is accepted for compatibility with coturn/);
  const s = await runCli(['-p', '3479', '-a']);
  t.equal(s.code, 0);
  t.equal(s.startOptions[0]?.notes?.length, 2, 'the daemon gets the notes to log at start');
});

t.test(
  'TCP relaying: coturn relays TCP unless no-tcp-relay; the import leaves tcp-relay off and says so',
  async (t) => {
    const on = translate('realm=example.org\nuser=alice:secret\n');
    t.equal(on.config['tcp-relay'], undefined, 'tcp-relay not set (off)');
    t.ok(
      on.differences.some((d) => /tcp-relay/.test(d.text) && /no-tcp-relay/.test(d.text)),
      'the difference is reported',
    );
    const off = translate('realm=example.org\nuser=alice:secret\nno-tcp-relay\n');
    t.equal(off.config['tcp-relay'], undefined);
    t.notOk(
      off.differences.some((d) => /tcp-relay/.test(d.text)),
      'nothing to report',
    );
    t.ok(off.accepted.some((n) => n.option === 'no-tcp-relay' && /off in turnpike/.test(n.text)));
    const stun = translate('realm=example.org\n');
    t.notOk(
      stun.differences.some((d) => /tcp-relay/.test(d.text)),
      'no TURN: not mentioned',
    );
  },
);

t.test('mobility: the flag carries over (RFC 8016, coturn and turnpike both default off)', async (t) => {
  const r = translate('mobility\nlistening-port=3478\n');
  t.same(r.config, { mobility: true, 'listening-port': 3478 });
  t.same(r.unsupported, []);
  t.same(translate('# mobility\nlistening-port=3478\n').config, { 'listening-port': 3478 }, 'absent: off');
});
