import { readFileSync } from 'node:fs';
import t from 'tap';
import { isRepeatable, KEYS, keyNames, keySpec } from '../../src/config/keys.js';
import { configReferenceMarkdown, jsonSchema } from '../../src/config/reference.js';
import { checkConfig, defaults, suggestKey, validate } from '../../src/config/schema.js';
import type { Config } from '../../src/config/types.js';
import { configError } from '../fixtures/helpers/assertions.js';

const root = new URL('../../', import.meta.url);

const SOURCE = 'test.json';

t.test('defaults', async (t) => {
  const d = defaults();
  t.same(d, {
    listeningPort: 3478,
    listeningIps: [],
    tlsListeningPort: 5349,
    cert: undefined,
    pkey: undefined,
    realm: 'turnpike',
    users: [],
    useAuthSecret: false,
    staticAuthSecrets: [],
    minPort: 49152,
    maxPort: 65535,
    relayIps: [],
    externalIps: [],
    allowedPeerIps: [],
    deniedPeerIps: [],
    userQuota: 0,
    totalQuota: 0,
    maxAllocateLifetime: 3600,
    allocationDefaultAddressFamily: 'ipv4',
    channelLifetime: 600,
    permissionLifetime: 300,
    staleNonce: 600,
    prometheus: false,
    prometheusPort: 9641,
    prometheusAddress: '127.0.0.1',
    maxPermissions: 64,
    maxChannels: 64,
    tcpRelay: false,
    tcpRelayMaxConnections: 32,
    unauthorizedRatelimitRps: 10,
    rfc5766ChannelNumbers: false,
    mobility: false,
    noSha256: false,
    alternateServers: [],
    drainTimeout: 60,
    apiToken: undefined,
    publicHost: undefined,
    testPage: false,
    logLevel: 'info',
    noUdp: false,
    noTcp: false,
    noTls: false,
    softwareAttribute: false,
    verifiedSourceLifetime: 600,
    maxVerifiedSources: 65536,
    logFormat: 'auto',
    maxTcpConnections: 10000,
    maxTcpConnectionsPerIp: 256,
    tlsHandshakeTimeout: 10,
    proxyProtocol: false,
    tcpIdleTimeout: 30,
    tcpFrameTimeout: 5,
    maxFrameBytes: 65540,
    sockBufSize: 0,
    dataPlane: 'auto',
    relayThreads: -1,
    noRelaySteering: false,
    redisUrl: undefined,
    redisPassword: undefined,
    redisKeyPrefix: 'turnpike',
    redisTimeout: 1000,
    redisUserdbPoll: 10,
    nodeId: undefined,
    fleetAddress: undefined,
    fleetUserQuota: 0,
    fleetLeaseTime: 30,
    fleetQuotaOnError: 'allow',
    fleetMaxAllocations: 0,
    fleetMaxCpu: 0,
    fleetReadyzCapacity: false,
    fleetReadyzRedis: false,
    fleetUsageInterim: 300,
    fleetUsageBuffer: 100000,
    fleetUsageStreamMax: 1000000,
    relayPayloadPolicy: 'any',
    maxBps: 0,
    userMaxBps: 0,
    bpsCapacity: 0,
  } satisfies Config);
  t.ok(Object.hasOwn(d, 'cert') && Object.hasOwn(d, 'pkey'), 'optional fields are present, as undefined');
  t.same(validate({}, SOURCE), d, 'an empty file gives the defaults');
  t.not(defaults().users, defaults().users, 'each call returns fresh arrays');
  t.equal(new Set(keyNames()).size, KEYS.length, 'key names are unique');
  t.equal(new Set(KEYS.map((k) => k.field)).size, KEYS.length, 'fields are unique');
  for (const spec of KEYS) t.match(spec.name, /^[a-z][a-z0-9]*(-[a-z0-9]+)*$/, `${spec.name} is kebab-case`);
  t.equal(keySpec('user')?.secret, true);
  t.equal(keySpec('static-auth-secret')?.secret, true);
  t.same(
    KEYS.filter((k) => k.secret).map((k) => k.name),
    ['user', 'static-auth-secret', 'api-token', 'redis-url', 'redis-password'],
    'exactly the secrets are marked secret',
  );
  const user = keySpec('user');
  t.ok(user !== undefined && isRepeatable(user), 'user is repeatable');
  const port = keySpec('listening-port');
  t.ok(port !== undefined && !isRepeatable(port), 'listening-port is not repeatable');
});

t.test('accepts good values of every kind', async (t) => {
  const config = validate(
    {
      $schema: './conf/turnpike.schema.json',
      'listening-port': 1,
      'listening-ip': ['0.0.0.0', '::', '192.0.2.1', 'fe80::1%eth0'],
      cert: 'cert.pem',
      pkey: 'key.pem',
      realm: 'example.org',
      user: ['alice:secret', 'bob:0x0123456789ABCDEF0123456789abcdef', 'carol:pa:ss:word'],
      'use-auth-secret': true,
      'static-auth-secret': ['s1', 's2'],
      'min-port': 50000,
      'max-port': 50000,
      'relay-ip': ['192.0.2.10', '2001:db8::10'],
      'external-ip': ['198.51.100.1', '198.51.100.2/10.0.0.2', '2001:db8::1/2001:db8::2'],
      'allowed-peer-ip': [
        '10.0.0.1',
        '10.0.0.0/8',
        '10.0.0.1-10.0.0.9',
        '::1',
        'fc00::/7',
        '::1-::2',
        '10.0.0.0/32',
      ],
      'denied-peer-ip': ['0.0.0.0/0', '::/0', '1.2.3.4-1.2.3.4'],
      'user-quota': 10,
      'log-level': 'silent',
      'no-udp': true,
      'max-frame-bytes': 24,
      'sock-buf-size': 1048576,
      'prometheus-address': '::1',
      'public-host': 'turn.example.org.',
      'test-page': true,
      'redis-url': 'rediss://user@redis.example.org:6380/2',
      'node-id': 'turn-eu-1',
      'fleet-address': '192.0.2.1:3478',
      'fleet-quota-on-error': 'deny',
    },
    SOURCE,
  );
  t.equal(config.redisUrl, 'rediss://user@redis.example.org:6380/2');
  t.equal(config.fleetQuotaOnError, 'deny');
  t.equal(config.publicHost, 'turn.example.org.');
  t.equal(config.testPage, true);
  for (const host of ['turn', 'a-b.example', '192.0.2.1', '2001:db8::1', `${'a'.repeat(63)}.org`]) {
    t.equal(validate({ 'public-host': host }, SOURCE).publicHost, host, `public-host ${host}`);
  }
  t.equal(config.listeningPort, 1);
  t.equal(config.cert, 'cert.pem');
  t.same(config.users, ['alice:secret', 'bob:0x0123456789ABCDEF0123456789abcdef', 'carol:pa:ss:word']);
  t.equal(config.logLevel, 'silent');
  t.equal(config.noUdp, true);
  t.equal(config.tlsListeningPort, 5349, 'missing keys take their default');
  t.equal(validate({ cert: null, pkey: null }, SOURCE).cert, undefined, 'null unsets an optional key');
});

t.test('refuses bad values with the key named', async (t) => {
  const cases: [string, unknown, RegExp][] = [
    ['min-port', 'abc', /must be an integer 1-65535, got "abc" \(test\.json\)/],
    ['listening-port', 0, /integer 1-65535, got 0/],
    ['listening-port', 65536, /got 65536/],
    ['listening-port', 3478.5, /got 3478\.5/],
    ['listening-port', '3478', /got "3478"/],
    ['tls-listening-port', null, /got null/],
    ['max-frame-bytes', 23, /integer 24-65540/],
    ['max-frame-bytes', 65541, /integer 24-65540/],
    ['user-quota', -1, /integer 0-/],
    ['use-auth-secret', 'yes', /must be true or false, got "yes"/],
    ['no-udp', 1, /true or false/],
    ['log-level', 'verbose', /one of trace, debug, info, warn, error, fatal, silent, got "verbose"/],
    ['log-level', 'INFO', /one of/],
    ['realm', '', /must not be empty/],
    ['realm', 'x'.repeat(128), /fewer than 128 characters/],
    ['realm', 'a\nb', /control characters/],
    ['realm', null, /must be a string/],
    ['cert', '', /must not be empty/],
    ['cert', 42, /must be a string, got 42/],
    ['listening-ip', '0.0.0.0', /must be an array of strings, got "0\.0\.0\.0"/],
    ['listening-ip', [1], /item 1 must be a string/],
    ['listening-ip', ['localhost'], /item 1 must be an IPv4 or IPv6 address, got "localhost"/],
    ['listening-ip', ['::', '1.2.3'], /item 2 must be an IPv4 or IPv6 address/],
    ['relay-ip', ['example.org'], /IPv4 or IPv6/],
    ['relay-ip', ['0.0.0.0'], /specific address, not the wildcard/],
    ['relay-ip', ['::'], /not the wildcard/],
    ['prometheus-address', 'localhost', /IPv4 or IPv6 address/],
    ['external-ip', ['198.51.100.1/'], /public-ip or public-ip\/private-ip/],
    ['external-ip', ['a.b.c.d'], /public-ip/],
    ['external-ip', ['1.2.3.4/5.6.7.8/9.9.9.9'], /public-ip/],
    ['external-ip', ['0.0.0.0/10.0.0.1'], /public-ip/],
    ['external-ip', ['198.51.100.1/2001:db8::1'], /same family/],
    ['allowed-peer-ip', ['10.0.0.0/33'], /prefix length must be 0-32/],
    ['allowed-peer-ip', ['fc00::/129'], /prefix length must be 0-128/],
    ['allowed-peer-ip', ['10.0.0.0/x'], /CIDR/],
    ['allowed-peer-ip', ['10.0.0.0/'], /CIDR/],
    ['denied-peer-ip', ['10.0.0.9-10.0.0.1'], /start is after its end/],
    ['denied-peer-ip', ['::2-::1'], /start is after its end/],
    ['denied-peer-ip', ['2001:db8::1:0-2001:db8::ff'], /start is after its end/],
    ['denied-peer-ip', ['10.0.0.1-::1'], /same address family/],
    ['denied-peer-ip', ['10.0.0.1-'], /range/],
    ['denied-peer-ip', ['host.example'], /IP address, CIDR/],
    ['user', ['alice'], /name:password/],
    ['user', [':password'], /name:password/],
    ['user', ['alice:'], /user "alice": password must not be empty/],
    ['user', ['alice:0x1234'], /user "alice": .*exactly 32 hex digits/],
    ['user', ['alice:0x0123456789abcdef0123456789abcdeg'], /32 hex digits/],
    ['static-auth-secret', [''], /item 1 must not be empty/],
    ['static-auth-secret', 'single', /must be an array/],
    ['public-host', 'turn.example.org:3478', /DNS name or an IP address \(no port, no brackets\)/],
    ['public-host', '[2001:db8::1]', /DNS name or an IP address/],
    ['public-host', '-bad.example', /DNS name/],
    ['public-host', 'a..b', /DNS name/],
    ['public-host', '1.2.3', /DNS name/],
    ['redis-url', 'http://redis:6379', /redis-url.*redis:\/\/ or rediss:\/\//],
    ['redis-url', 'redis://host/x', /database number/],
    ['node-id', 'a b', /node-id.*letters, digits/],
    ['fleet-quota-on-error', 'maybe', /fleet-quota-on-error/],
    ['fleet-max-cpu', 101, /fleet-max-cpu/],
    ['fleet-address', 'turn.example.org', /fleet-address.*ip, ip:port/],
    ['public-host', `${'a'.repeat(64)}.org`, /DNS name/],
    ['public-host', '', /DNS name/],
    ['test-page', 'on', /true or false/],
  ];
  for (const [key, value, message] of cases) {
    const error = configError(() => validate({ [key]: value }, SOURCE));
    t.equal(error.key, key, `${key} = ${JSON.stringify(value)}: key`);
    t.match(error.message, message, `${key} = ${JSON.stringify(value)}: message`);
    t.ok(error.message.startsWith(`${key}: `), 'message starts with the key');
  }
});

t.test('IPv6 ranges compare numerically, including embedded IPv4 and ::', async (t) => {
  const ok = ['::ffff:10.0.0.1-::ffff:10.0.0.2', '::-::1', '1::-1::1', '2001:db8::-2001:db8:0:0:0:0:0:ffff'];
  for (const range of ok) t.doesNotThrow(() => validate({ 'denied-peer-ip': [range] }, SOURCE), range);
  const bad = ['::ffff:10.0.0.2-::ffff:10.0.0.1', '2001:db8::1-2001:db8::', '1::1-1::'];
  for (const range of bad)
    t.equal(configError(() => validate({ 'denied-peer-ip': [range] }, SOURCE)).key, 'denied-peer-ip');
});

t.test('secret values never appear in error messages', async (t) => {
  const secret = 'hunter2-SECRET';
  const messages = [
    configError(() => validate({ user: [secret] }, SOURCE)).message,
    configError(() => validate({ user: [`0x${secret}`] }, SOURCE)).message,
    configError(() => validate({ user: `alice:${secret}` }, SOURCE)).message,
    configError(() => validate({ user: [`alice:0x${secret}`] }, SOURCE)).message,
    configError(() => validate({ 'static-auth-secret': secret }, SOURCE)).message,
    configError(() => validate({ 'static-auth-secret': [secret, 7] }, SOURCE)).message,
  ];
  for (const message of messages) t.notMatch(message, /hunter2/, message);
  t.match(messages[3], /user "alice"/, 'the user name is shown');
});

t.test('unknown keys are refused, with a suggestion when close', async (t) => {
  let error = configError(() => validate({ 'listen-port': 3478 }, SOURCE));
  t.equal(error.key, 'listen-port');
  t.match(error.message, /unknown configuration key \(did you mean listening-port\?\) \(test\.json\)/);
  error = configError(() => validate({ listeningPort: 3478 }, SOURCE));
  t.match(error.message, /did you mean listening-port/, 'camelCase spelling is recognised');
  error = configError(() => validate({ 'no-dtls': true }, SOURCE));
  t.equal(error.key, 'no-dtls');
  error = configError(() => validate({ completely_unrelated_thing: 1 }, SOURCE));
  t.notMatch(error.message, /did you mean/);
  t.equal(suggestKey('static_auth_secret'), 'static-auth-secret');
  t.equal(suggestKey('xyz'), undefined);
  t.equal(configError(() => validate(JSON.parse('{"__proto__": {"realm": "x"}}'), SOURCE)).key, '__proto__');
  t.equal(configError(() => validate({ $schema: 5 }, SOURCE)).key, '$schema');
});

t.test('the file must hold an object', async (t) => {
  for (const raw of [null, [], 'x', 3]) {
    const error = configError(() => validate(raw, SOURCE));
    t.equal(error.key, 'config');
    t.match(error.message, /must be a JSON object/);
  }
});

t.test('cross-field rules', async (t) => {
  let error = configError(() => validate({ 'min-port': 50001, 'max-port': 50000 }, SOURCE));
  t.equal(error.key, 'min-port');
  t.match(error.message, /must not exceed max-port \(50000\), got 50001/);

  error = configError(() => validate({ 'use-auth-secret': true }, SOURCE));
  t.equal(error.key, 'static-auth-secret');
  t.equal(
    configError(() => validate({ 'use-auth-secret': true, 'static-auth-secret': [] }, SOURCE)).key,
    'static-auth-secret',
  );
  t.doesNotThrow(
    () => validate({ 'static-auth-secret': ['s'] }, SOURCE),
    'a secret without use-auth-secret is fine',
  );

  t.equal(configError(() => validate({ cert: 'c.pem' }, SOURCE)).key, 'pkey');
  t.equal(configError(() => validate({ pkey: 'k.pem' }, SOURCE)).key, 'cert');
  t.equal(configError(() => validate({ cert: 'c.pem', pkey: null }, SOURCE)).key, 'pkey');
  t.doesNotThrow(() => validate({ 'no-tls': false }, SOURCE), 'TLS on without cert/pkey is not an error');

  t.doesNotThrow(
    () => validate({ cert: 'c', pkey: 'k', 'tls-listening-port': 3478 }, SOURCE),
    'TCP and TLS on one port: one listener serves both',
  );
  t.doesNotThrow(() =>
    validate({ cert: 'c', pkey: 'k', 'tls-listening-port': 3478, 'no-tcp': true }, SOURCE),
  );
  t.doesNotThrow(() =>
    validate({ cert: 'c', pkey: 'k', 'tls-listening-port': 3478, 'no-tls': true }, SOURCE),
  );
  t.doesNotThrow(() => validate({ 'tls-listening-port': 3478 }, SOURCE), 'no clash when TLS does not start');

  const config = defaults();
  t.equal(checkConfig(config), config, 'checkConfig returns its argument');
});

t.test('conf/turnpike.schema.json is in sync with jsonSchema()', async (t) => {
  const committed = readFileSync(new URL('conf/turnpike.schema.json', root), 'utf8');
  t.equal(
    committed,
    JSON.stringify(jsonSchema(), null, 2) + '\n',
    'out of date; regenerate with: npm run gen:config',
  );
});

t.test('jsonSchema() describes every key with its default', async (t) => {
  const schema = jsonSchema() as {
    $schema: string;
    additionalProperties: boolean;
    type: string;
    properties: Record<
      string,
      { default?: unknown; description?: string; writeOnly?: boolean; type?: unknown }
    >;
  };
  t.equal(schema.$schema, 'https://json-schema.org/draft/2020-12/schema');
  t.equal(schema.additionalProperties, false);
  t.equal(schema.type, 'object');
  t.same(Object.keys(schema.properties), ['$schema', ...keyNames()]);
  const d = defaults() as unknown as Record<string, unknown>;
  for (const spec of KEYS) {
    const property = schema.properties[spec.name];
    t.ok(property?.description, `${spec.name} has a description`);
    t.same(property?.default, d[spec.field] ?? null, `${spec.name} default`);
    t.equal(property?.writeOnly === true, spec.secret, `${spec.name} writeOnly iff secret`);
  }
  t.match(schema.properties['listening-port'], { type: 'integer', minimum: 1, maximum: 65535 });
  t.match(schema.properties['log-level'], { type: 'string', anyOf: [{ const: 'trace' }] });
  t.match(schema.properties['cert'], { anyOf: [{ type: 'string' }, { type: 'null' }] });
  t.match(schema.properties['user'], { type: 'array', items: { type: 'string' } });
});

t.test('turnserver.example.json has every key at its default and validates', async (t) => {
  const path = new URL('turnserver.example.json', root);
  const example = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
  t.equal(example['$schema'], './conf/turnpike.schema.json');
  t.same(Object.keys(example), ['$schema', ...keyNames()], 'every key, in table order');
  t.same(validate(example, 'turnserver.example.json'), defaults());
  const schema = jsonSchema() as { properties: Record<string, { default?: unknown }> };
  for (const [key, value] of Object.entries(example)) {
    if (key === '$schema') continue;
    t.same(value, schema.properties[key]?.default, `${key} is at its schema default`);
  }
});

t.test('configReferenceMarkdown()', async (t) => {
  const markdown = configReferenceMarkdown();
  const lines = markdown.trimEnd().split('\n');
  t.equal(lines[0], '| Key | Type | Default | Description |');
  t.equal(lines.length, KEYS.length + 2, 'one row per key');
  for (const spec of KEYS)
    t.ok(
      lines.some((l) => l.startsWith(`| \`${spec.name}\` |`)),
      spec.name,
    );
  t.match(markdown, '| `listening-port` | integer 1–65535 | `3478` | STUN/TURN port for UDP and TCP. |');
  t.match(markdown, '| `cert` | string `file` | unset |');
  t.match(markdown, /\| `user` \| list of `name:password` \(repeatable\) \| `\[\]` \| .* Secret\. \|/);
  t.match(markdown, 'list of `ip\\|cidr\\|a-b`', 'pipes are escaped');
  for (const line of lines) t.equal(line.replace(/\\\|/g, '').split('|').length, 6, `4 columns: ${line}`);
});
