import { join } from 'node:path';
import t from 'tap';
import { keyNames } from '../../src/config/keys.js';
import {
  diffConfig,
  envName,
  fromEnvironment,
  loadConfig,
  locateJsonError,
  REDACTED,
  readConfigFile,
  redact,
  unknownEnvironmentVariables,
} from '../../src/config/load.js';
import { defaults } from '../../src/config/schema.js';
import type { Config } from '../../src/config/types.js';
import { configError } from '../fixtures/helpers/assertions.js';

const noCli = {};

t.test('envName', async (t) => {
  t.equal(envName('listening-port'), 'TURNPIKE_LISTENING_PORT');
  t.equal(envName('realm'), 'TURNPIKE_REALM');
});

t.test('no sources: the defaults, deep-frozen', async (t) => {
  const config = loadConfig({ env: {}, cli: noCli });
  t.same(config, defaults());
  t.ok(Object.isFrozen(config), 'config frozen');
  t.ok(Object.isFrozen(config.users) && Object.isFrozen(config.listeningIps), 'arrays frozen');
  t.throws(() => {
    (config as { realm: string }).realm = 'x';
  }, TypeError);
  t.throws(() => (config.users as string[]).push('x:y'), TypeError);
  t.same(loadConfig({ file: undefined, env: {}, cli: noCli }), defaults(), 'file: undefined is no file');
});

t.test('JSON file', async (t) => {
  const dir = t.testdir({
    'good.json': JSON.stringify({ $schema: './x.json', 'listening-port': 4000, user: ['a:b'] }),
    'bom.json': '\ufeff{"realm": "bom"}',
    'empty.json': '',
    'array.json': '[]',
    'unknown.json': '{"listening-prot": 1}',
    'bad-value.json': '{"min-port": "abc"}',
  });
  const config = loadConfig({ file: join(dir, 'good.json'), env: {}, cli: noCli });
  t.equal(config.listeningPort, 4000);
  t.same(config.users, ['a:b']);
  t.equal(config.realm, 'turnpike', 'unset keys keep their default');
  t.equal(loadConfig({ file: join(dir, 'bom.json'), env: {}, cli: noCli }).realm, 'bom', 'a BOM is skipped');

  let error = configError(() => loadConfig({ file: join(dir, 'missing.json'), env: {}, cli: noCli }));
  t.equal(error.key, 'config');
  t.match(error.message, /cannot read .*missing\.json: ENOENT/);

  error = configError(() => readConfigFile(join(dir, 'empty.json')));
  t.match(error.message, /empty\.json: invalid JSON at line 1, column 1: Unexpected end of JSON input/);

  error = configError(() => readConfigFile(join(dir, 'array.json')));
  t.equal(error.key, 'config');
  t.match(error.message, /must be a JSON object/);

  error = configError(() => readConfigFile(join(dir, 'unknown.json')));
  t.equal(error.key, 'listening-prot');
  t.match(error.message, /unknown configuration key \(did you mean listening-port\?\) \(.*unknown\.json\)/);

  error = configError(() => readConfigFile(join(dir, 'bad-value.json')));
  t.equal(error.key, 'min-port');
  t.match(error.message, /^min-port: must be an integer 1-65535, got "abc" \(.*bad-value\.json\)$/);
});

t.test('JSON syntax errors name the file, line and column', async (t) => {
  const cases: [string, string, number, number][] = [
    ['trailing-comma', '{\n  "realm": "x",\n}', 3, 1],
    ['unquoted-key', '{\n  realm: "x"\n}', 2, 3],
    ['bad-literal', '{\n  "no-udp": tru\n}', 2, 13],
    ['comment', '// turnpike\n{}', 1, 1],
    ['truncated', '{\n  "realm": "x"', 2, 15],
    ['control-char', '{"realm": "a\tb"}', 1, 13],
    ['trailing-garbage', '{}\n}', 2, 1],
    ['bad-escape', '{"realm": "\\x"}', 1, 12],
    ['bad-unicode', '{"realm": "\\u12G4"}', 1, 12],
    ['single-quotes', "{'realm': 1}", 1, 2],
    ['leading-zero', '{"min-port": 01}', 1, 15],
    ['missing-colon', '{"realm" "x"}', 1, 10],
    ['array-comma', '{"user": ["a:b" "c:d"]}', 1, 17],
  ];
  const files: Record<string, string> = {};
  for (const [name, text] of cases) files[`${name}.json`] = text;
  const dir = t.testdir(files);
  for (const [name, , line, column] of cases) {
    const error = configError(() => readConfigFile(join(dir, `${name}.json`)));
    t.equal(error.key, 'config', name);
    t.match(error.message, `${name}.json: invalid JSON at line ${line}, column ${column}: `, name);
  }
});

t.test('JSON errors do not quote the file (it may hold secrets)', async (t) => {
  const dir = t.testdir({ 'secret.json': '{"static-auth-secret": ["hunter2"], oops}' });
  const error = configError(() => readConfigFile(join(dir, 'secret.json')));
  t.notMatch(error.message, /hunter2/);
});

t.test('locateJsonError agrees with JSON.parse on valid documents', async (t) => {
  const valid = [
    '{}',
    '[]',
    ' {"a": [1, -2.5e+3, 0, true, false, null, "x\\"\\u00e9\\n"], "b": {"c": {}}} ',
    '"s"',
    '0',
    JSON.stringify(defaults()),
  ];
  for (const text of valid) t.equal(locateJsonError(text), undefined, text);
  t.equal(locateJsonError('{"a":1,}'), 7);
  t.equal(locateJsonError('[1,]'), 3);
  t.equal(locateJsonError('[1 2]'), 3);
  t.equal(locateJsonError('"abc'), 4);
  t.equal(locateJsonError('-'), 0);
});

t.test('environment variables', async (t) => {
  const env = {
    TURNPIKE_LISTENING_PORT: '4000',
    TURNPIKE_LISTENING_IP: ' 192.0.2.1 , ::1,',
    TURNPIKE_NO_UDP: 'yes',
    TURNPIKE_NO_TCP: 'Off',
    TURNPIKE_PROMETHEUS: '1',
    TURNPIKE_SOFTWARE_ATTRIBUTE: 'FALSE',
    TURNPIKE_LOG_LEVEL: 'DEBUG',
    TURNPIKE_REALM: 'example.org',
    TURNPIKE_RELAY_IP: '',
    UNRELATED: 'x',
  };
  const config = loadConfig({ env, cli: noCli });
  t.equal(config.listeningPort, 4000);
  t.same(config.listeningIps, ['192.0.2.1', '::1'], 'comma-separated, trimmed, empty items dropped');
  t.equal(config.noUdp, true);
  t.equal(config.noTcp, false);
  t.equal(config.prometheus, true);
  t.equal(config.softwareAttribute, false);
  t.equal(config.logLevel, 'debug');
  t.equal(config.realm, 'example.org');
  t.same(config.relayIps, [], 'empty list variable is an empty list');

  for (const word of ['true', '1', 'yes', 'on', 'TRUE', ' on ']) {
    t.equal(
      loadConfig({ env: { TURNPIKE_USE_AUTH_SECRET: word, TURNPIKE_STATIC_AUTH_SECRET: 's' }, cli: noCli })
        .useAuthSecret,
      true,
      word,
    );
  }
  for (const word of ['false', '0', 'no', 'off']) {
    t.equal(loadConfig({ env: { TURNPIKE_NO_TLS: word }, cli: noCli }).noTls, false, word);
  }
});

t.test('bad environment values name the key and the variable', async (t) => {
  const cases: [Record<string, string>, string, RegExp][] = [
    [
      { TURNPIKE_MIN_PORT: 'abc' },
      'min-port',
      /must be an integer 1-65535, got "abc" \(environment variable TURNPIKE_MIN_PORT\)/,
    ],
    [{ TURNPIKE_MIN_PORT: '' }, 'min-port', /got ""/],
    [{ TURNPIKE_MIN_PORT: '0x10' }, 'min-port', /got "0x10"/],
    [{ TURNPIKE_MIN_PORT: '1e3' }, 'min-port', /got "1e3"/],
    [{ TURNPIKE_MAX_PORT: '70000' }, 'max-port', /got 70000/],
    [{ TURNPIKE_NO_UDP: 'maybe' }, 'no-udp', /must be true or false, got "maybe"/],
    [{ TURNPIKE_LOG_LEVEL: 'loud' }, 'log-level', /one of/],
    [
      { TURNPIKE_LISTENING_IP: '1.2.3.4,nope' },
      'listening-ip',
      /item 2 must be an IPv4 or IPv6 address, got "nope"/,
    ],
    [{ TURNPIKE_CERT: '' }, 'cert', /must not be empty/],
    [{ TURNPIKE_USE_AUTH_SECRET: 'on' }, 'static-auth-secret', /required when use-auth-secret/],
  ];
  for (const [env, key, message] of cases) {
    const error = configError(() => loadConfig({ env, cli: noCli }));
    t.equal(error.key, key, JSON.stringify(env));
    t.match(error.message, message, JSON.stringify(env));
  }
});

t.test('_FILE variables read the value from a file', async (t) => {
  const dir = t.testdir({
    secret: 's3cret,with,commas\n',
    secrets: 'first\r\nsecond\n\nthird\n',
    users: 'alice:pa,ss\nbob:x\n',
    port: '4001\n\n',
    realm: 'file-realm',
  });
  const config = loadConfig({
    env: {
      TURNPIKE_USE_AUTH_SECRET: 'true',
      TURNPIKE_STATIC_AUTH_SECRET_FILE: join(dir, 'secret'),
      TURNPIKE_USER_FILE: join(dir, 'users'),
      TURNPIKE_LISTENING_PORT_FILE: join(dir, 'port'),
      TURNPIKE_REALM_FILE: join(dir, 'realm'),
    },
    cli: noCli,
  });
  t.same(config.staticAuthSecrets, ['s3cret,with,commas'], 'one line, trailing newline trimmed, commas kept');
  t.same(config.users, ['alice:pa,ss', 'bob:x'], 'lists: one item per line');
  t.equal(config.listeningPort, 4001);
  t.equal(config.realm, 'file-realm');
  t.same(fromEnvironment({ TURNPIKE_STATIC_AUTH_SECRET_FILE: join(dir, 'secrets') }).staticAuthSecrets, [
    'first',
    'second',
    'third',
  ]);

  let error = configError(() =>
    loadConfig({ env: { TURNPIKE_REALM: 'a', TURNPIKE_REALM_FILE: join(dir, 'realm') }, cli: noCli }),
  );
  t.equal(error.key, 'realm');
  t.match(error.message, /both TURNPIKE_REALM and TURNPIKE_REALM_FILE are set/);

  error = configError(() => loadConfig({ env: { TURNPIKE_USER_FILE: join(dir, 'nope') }, cli: noCli }));
  t.equal(error.key, 'user');
  t.match(error.message, /cannot read file .*nope from TURNPIKE_USER_FILE: ENOENT/);

  const bad = t.testdir({ port: 'eighty\n', user: 'hunter2-no-colon\n' });
  error = configError(() => loadConfig({ env: { TURNPIKE_MIN_PORT_FILE: join(bad, 'port') }, cli: noCli }));
  t.equal(error.key, 'min-port');
  t.match(error.message, /got "eighty" \(file .*port from TURNPIKE_MIN_PORT_FILE\)/);
  error = configError(() => loadConfig({ env: { TURNPIKE_USER_FILE: join(bad, 'user') }, cli: noCli }));
  t.equal(error.key, 'user');
  t.notMatch(error.message, /hunter2/, 'secret file content is not echoed');
});

t.test('unknown TURNPIKE_ variables are ignored by loadConfig and listed', async (t) => {
  const env = {
    TURNPIKE_LISTEN_PORT: '1',
    TURNPIKE_PORT: 'tcp://10.0.0.1:3478',
    TURNPIKE_REALM: 'r',
    OTHER: '1',
  };
  t.equal(loadConfig({ env, cli: noCli }).listeningPort, 3478);
  t.same(unknownEnvironmentVariables(env), ['TURNPIKE_LISTEN_PORT', 'TURNPIKE_PORT']);
  t.same(unknownEnvironmentVariables({ TURNPIKE_USER_FILE: '/x', TURNPIKE_NO_UDP: '1' }), []);
});

t.test('precedence: defaults < file < environment < command line', async (t) => {
  const dir = t.testdir({
    'c.json': JSON.stringify({
      'listening-port': 1001,
      'tls-listening-port': 1002,
      'min-port': 1003,
      realm: 'file',
      'listening-ip': ['192.0.2.1', '192.0.2.2'],
      'no-udp': true,
    }),
  });
  const file = join(dir, 'c.json');
  const env = {
    TURNPIKE_TLS_LISTENING_PORT: '2002',
    TURNPIKE_MIN_PORT: '2003',
    TURNPIKE_LISTENING_IP: '192.0.2.9',
  };
  const cli = { 'min-port': '3003', 'listening-ip': ['::1'] };

  const config = loadConfig({ file, env, cli });
  t.equal(config.maxPort, 65535, 'default');
  t.equal(config.listeningPort, 1001, 'file over default');
  t.equal(config.realm, 'file');
  t.equal(config.noUdp, true, 'file value kept when env and CLI are silent');
  t.equal(config.tlsListeningPort, 2002, 'env over file');
  t.equal(config.minPort, 3003, 'CLI over env and file');
  t.same(config.listeningIps, ['::1'], 'lists are replaced, not merged');
  t.same(loadConfig({ file, env, cli: {} }).listeningIps, ['192.0.2.9'], 'env list over file list');
  t.equal(
    loadConfig({ file, env: {}, cli: { 'no-udp': false } }).noUdp,
    false,
    'CLI false overrides file true',
  );

  // cross-field rules run on the merged result, not per source
  t.equal(loadConfig({ file, env: { TURNPIKE_MAX_PORT: '500' }, cli: { 'min-port': 400 } }).minPort, 400);
  t.equal(
    configError(() => loadConfig({ file, env: { TURNPIKE_MAX_PORT: '500' }, cli: {} })).key,
    'min-port',
  );
});

t.test('command-line values', async (t) => {
  const config = loadConfig({
    env: {},
    cli: {
      'listening-port': '5000',
      'no-udp': true,
      user: ['a:1', 'b:2'],
      'relay-ip': '192.0.2.5',
      'log-level': 'warn',
      'max-port': 6000,
      'min-port': 5500,
    },
  });
  t.equal(config.listeningPort, 5000);
  t.equal(config.noUdp, true);
  t.same(config.users, ['a:1', 'b:2']);
  t.same(config.relayIps, ['192.0.2.5'], 'a single string for a list key is one item, not comma-split');
  t.equal(config.maxPort, 6000);

  let error = configError(() => loadConfig({ env: {}, cli: { 'listening-port': 'x' } }));
  t.equal(error.key, 'listening-port');
  t.match(error.message, /got "x" \(command-line option --listening-port\)/);
  error = configError(() => loadConfig({ env: {}, cli: { bogus: 1 } }));
  t.equal(error.key, 'bogus');
  t.match(error.message, /unknown configuration key/);
});

const SECRET_CONFIG: Config = {
  ...defaults(),
  users: ['alice:hunter2', 'bob:0x0123456789abcdef0123456789abcdef', 'carol:pa:ss'],
  useAuthSecret: true,
  staticAuthSecrets: ['topsecret-one', 'topsecret-two'],
  cert: '/etc/cert.pem',
  pkey: '/etc/key.pem',
};

t.test('redact', async (t) => {
  const redacted = redact(SECRET_CONFIG);
  t.same(Object.keys(redacted), keyNames(), 'every key, kebab-case, in table order');
  t.same(redacted['user'], ['alice:<redacted>', 'bob:<redacted>', 'carol:<redacted>']);
  t.same(redacted['static-auth-secret'], [REDACTED, REDACTED]);
  t.equal(redacted['cert'], '/etc/cert.pem', 'paths are not secret');
  t.equal(redacted['listening-port'], 3478);
  t.equal(redact(defaults())['cert'], null, 'unset optional keys are null');
  const text = JSON.stringify(redacted);
  for (const secret of ['hunter2', '0123456789abcdef', 'topsecret', 'pa:ss']) t.notMatch(text, secret);
  t.equal(SECRET_CONFIG.users[0], 'alice:hunter2', 'the config itself is untouched');
});

t.test('diffConfig', async (t) => {
  const a = loadConfig({ env: {}, cli: {} });
  t.same(diffConfig(a, a), []);
  t.same(diffConfig(a, defaults()), [], 'equal values, different arrays');
  const b = loadConfig({
    env: { TURNPIKE_REALM: 'other', TURNPIKE_USER: 'a:b', TURNPIKE_CERT: 'c', TURNPIKE_PKEY: 'k' },
    cli: {},
  });
  t.same(diffConfig(a, b), ['cert', 'pkey', 'realm', 'user']);
  const c: Config = { ...a, users: ['a:c'] };
  const d: Config = { ...a, users: ['a:c', 'x:y'] };
  t.same(diffConfig({ ...a, users: ['a:b'] }, c), ['user'], 'same length, different item');
  t.same(diffConfig(c, d), ['user'], 'different length');
});
