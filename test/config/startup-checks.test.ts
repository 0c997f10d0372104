/**
 * The start-up checks on their own: which configurations the daemon would refuse (and the key each
 * refusal names), and which settings are reported as having no effect.
 */
import t from 'tap';
import { defaults } from '../../src/config/schema.js';
import { checkStartup, configWarnings } from '../../src/config/startup-checks.js';
import type { Config } from '../../src/config/types.js';
import { ConfigError } from '../../src/errors.js';
import { makeCertificate, testDir } from '../fixtures/helpers/certificates.js';

const config = (overrides: Partial<Config> = {}): Config => ({ ...defaults(), ...overrides });

/** The key and message checkStartup refuses `c` with, or undefined when it passes. */
function refusal(c: Config): { key: string; message: string } | undefined {
  try {
    checkStartup(c);
    return undefined;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return { key: err.key, message: err.message };
  }
}

t.test('the defaults and ordinary configurations pass', async (t) => {
  t.equal(refusal(config()), undefined, 'embedded defaults');
  t.equal(refusal(config({ noUdp: true })), undefined, 'TCP only');
  t.equal(refusal(config({ noTcp: true })), undefined, 'UDP only');
  t.equal(refusal(config({ listeningIps: ['0.0.0.0', '::'] })), undefined, 'both wildcards');
  t.equal(refusal(config({ listeningIps: ['::', '127.0.0.1'] })), undefined, 'IPv6 wildcard, IPv4 address');
  t.equal(refusal(config({ prometheus: true })), undefined, 'HTTP on its own port');
  t.equal(
    refusal(config({ prometheus: true, prometheusPort: 3478, noTcp: true })),
    undefined,
    'HTTP on the UDP port number: TCP and UDP do not collide',
  );
  t.equal(
    refusal(config({ listeningIps: ['127.0.0.2'], prometheus: true, prometheusPort: 3478 })),
    undefined,
    'HTTP on another address',
  );
  t.equal(
    refusal(
      config({ listeningIps: ['::1'], prometheus: true, prometheusPort: 3478, prometheusAddress: '0.0.0.0' }),
    ),
    undefined,
    'IPv4 wildcard HTTP beside an IPv6-only listener',
  );
});

t.test('no listener: the key is no-udp', async (t) => {
  t.match(refusal(config({ noUdp: true, noTcp: true })), {
    key: 'no-udp',
    message: /^no-udp: no listener enabled: no-udp and no-tcp are both set and TLS is off/,
  });
  t.match(refusal(config({ noUdp: true, noTcp: true, cert: 'c', pkey: 'k', noTls: true })), {
    key: 'no-udp',
    message: /no-tls is set/,
  });
});

t.test('listening addresses that cannot all be bound', async (t) => {
  for (const [ips, message] of [
    [['127.0.0.1', '127.0.0.1'], /127\.0\.0\.1 is listed twice/],
    [['::', '0:0::0'], /:: is listed twice/],
    [['0.0.0.0', '192.0.2.1'], /0\.0\.0\.0 already covers 192\.0\.2\.1/],
    [['2001:db8::1', '::'], /:: already covers 2001:db8::1/],
    [['::ffff:192.0.2.1'], /IPv4-mapped .*give the IPv4 address 192\.0\.2\.1/],
  ] as const) {
    t.match(refusal(config({ listeningIps: ips })), { key: 'listening-ip', message }, ips.join(' '));
  }
});

t.test('the HTTP listener on a TCP or TLS port of the same address', async (t) => {
  t.match(refusal(config({ prometheus: true, prometheusPort: 3478 })), {
    key: 'prometheus-port',
    message: /3478 is also listening-port, and the TCP listener on 0\.0\.0\.0 takes it/,
  });
  t.match(
    refusal(
      config({ listeningIps: ['::1'], prometheus: true, prometheusPort: 3478, prometheusAddress: '::' }),
    ),
    { key: 'prometheus-port', message: /on ::1/ },
    'HTTP on the IPv6 wildcard',
  );
  t.match(
    refusal(
      config({
        listeningIps: ['127.0.0.1'],
        prometheus: true,
        prometheusPort: 3478,
        prometheusAddress: '::',
      }),
    ),
    { key: 'prometheus-port', message: /on 127\.0\.0\.1/ },
    'HTTP on :: is dual-stack: it takes the IPv4 port too',
  );
  const dir = testDir(t);
  const pair = makeCertificate(dir);
  t.match(
    refusal(
      config({
        listeningIps: ['127.0.0.1'],
        noTcp: true,
        cert: pair.cert,
        pkey: pair.key,
        prometheus: true,
        prometheusPort: 5349,
      }),
    ),
    { key: 'prometheus-port', message: /5349 is also tls-listening-port/ },
  );
  t.equal(
    refusal(config({ listeningIps: ['127.0.0.1'], noTcp: true, prometheus: true, prometheusPort: 5349 })),
    undefined,
    'no TLS without a certificate: the port is free',
  );
});

t.test('the certificate is loaded as the TLS listener loads it', async (t) => {
  const dir = testDir(t);
  const a = makeCertificate(dir, 'a');
  const b = makeCertificate(dir, 'b');
  t.equal(refusal(config({ cert: a.cert, pkey: a.key })), undefined);
  t.match(refusal(config({ cert: a.cert, pkey: b.key })), { key: 'pkey', message: /not the private key/ });
  t.match(refusal(config({ cert: b.key, pkey: b.key })), {
    key: 'cert',
    message: /no valid PEM certificate/,
  });
  t.match(refusal(config({ cert: `${dir}/none`, pkey: a.key })), { key: 'cert', message: /cannot read/ });
  t.equal(
    refusal(config({ cert: `${dir}/none`, pkey: a.key, noTls: true })),
    undefined,
    'not read with no-tls',
  );
});

t.test('warnings: each setting that changes nothing, worded "<key> has no effect: <why>"', async (t) => {
  t.same(configWarnings(config()), [], 'defaults');
  const turnOff = 'TURN is off (no user, no use-auth-secret and no redis-url)';
  const httpOff = 'the HTTP listener is off (prometheus is not set)';
  const cases: [Partial<Config>, string[]][] = [
    [
      { alternateServers: ['192.0.2.1'], minPort: 40000, relayIps: ['192.0.2.2'], realm: 'r' },
      [
        `realm has no effect: ${turnOff}`,
        `min-port has no effect: ${turnOff}`,
        `relay-ip has no effect: ${turnOff}`,
        `alternate-server has no effect: ${turnOff}`,
      ],
    ],
    [{ alternateServers: ['192.0.2.1'], users: ['a:b'] }, []],
    [{ alternateServers: ['192.0.2.1'], useAuthSecret: true, staticAuthSecrets: ['s'] }, []],
    [
      { staticAuthSecrets: ['s'], users: ['a:b'] },
      ['static-auth-secret has no effect: use-auth-secret is off'],
    ],
    [
      { apiToken: 'tok', testPage: true, publicHost: 'turn.example.org', prometheusPort: 9000 },
      [
        `prometheus-port has no effect: ${httpOff}`,
        `api-token has no effect: ${httpOff}`,
        `public-host has no effect: ${httpOff}`,
        `test-page has no effect: ${httpOff}`,
      ],
    ],
    [
      { prometheus: true, testPage: true },
      ['test-page has no effect: the page needs api-token (without one /test answers 403)'],
    ],
    [
      { prometheus: true, testPage: true, apiToken: 'tok' },
      [
        'test-page has no effect: the page needs ICE-server credentials, and /ice-servers needs use-auth-secret',
      ],
    ],
    [
      { prometheus: true, testPage: true, apiToken: 'tok', useAuthSecret: true, staticAuthSecrets: ['s'] },
      [],
    ],
    [
      { prometheus: true, publicHost: 'turn.example.org' },
      [
        'public-host has no effect: it is used only in /ice-servers answers, which need api-token and use-auth-secret',
      ],
    ],
    [
      { noTls: true, cert: 'c', pkey: 'k', tlsListeningPort: 443 },
      [
        'cert has no effect: no-tls is set',
        'pkey has no effect: no-tls is set',
        'tls-listening-port has no effect: TLS is off (no-tls is set)',
      ],
    ],
    [
      { tlsListeningPort: 443, tlsHandshakeTimeout: 5 },
      [
        'tls-listening-port has no effect: TLS is off (cert and pkey are not set)',
        'tls-handshake-timeout has no effect: TLS is off (cert and pkey are not set)',
      ],
    ],
    [
      { noTcp: true, proxyProtocol: true, maxFrameBytes: 1000 },
      [
        'max-frame-bytes has no effect: there is no TCP or TLS listener (no-tcp is set and TLS is off)',
        'proxy-protocol has no effect: there is no TCP or TLS listener (no-tcp is set and TLS is off)',
      ],
    ],
    [{ noTcp: true, proxyProtocol: true, cert: 'c', pkey: 'k' }, []],
    [
      { noUdp: true, noTcp: true, cert: 'c', pkey: 'k', listeningPort: 3479 },
      ['listening-port has no effect: no-udp and no-tcp are set; TLS listens on tls-listening-port'],
    ],
    [
      { noUdp: true, sockBufSize: 1 << 20 },
      [
        'sock-buf-size has no effect: it sizes UDP sockets, and there are none (no-udp is set and TURN is off)',
      ],
    ],
    [{ noUdp: true, sockBufSize: 1 << 20, users: ['a:b'] }, []],
    [
      { users: ['a:b'], nodeId: 'n1', fleetUserQuota: 3, redisTimeout: 200 },
      [
        'redis-timeout has no effect: fleet mode is off (redis-url is not set)',
        'node-id has no effect: fleet mode is off (redis-url is not set)',
        'fleet-user-quota has no effect: fleet mode is off (redis-url is not set)',
      ],
    ],
    [{ redisUrl: 'redis://127.0.0.1', nodeId: 'n1', fleetUserQuota: 3, realm: 'r' }, []],
  ];
  for (const [overrides, expected] of cases) {
    t.same(configWarnings(config(overrides)), expected, JSON.stringify(overrides));
  }
});
