import { BlockList } from 'node:net';
import t, { type Test } from 'tap';
import { checkPeerPattern } from '../../src/config/checks.js';
import { formatIp, parseIp } from '../../src/core/ip.js';
import {
  embeddedIPv4,
  PeerPolicy,
  type PeerPolicyOptions,
  type PeerVerdict,
} from '../../src/core/peer-policy.js';
import { Rng } from '../fixtures/helpers/random.js';

const PORT = 40000;

function policy(options: Partial<PeerPolicyOptions> = {}): PeerPolicy {
  return new PeerPolicy({ allowed: [], denied: [], ownServices: [], ...options });
}

/**
 * The verdict for a peer, asserting on the way that `checkBytes` (on the parsed bytes) and `isAllowed`
 * agree with `check`, so every table below covers all three entry points.
 */
function judge(tt: Test, p: PeerPolicy, address: string, port = PORT): PeerVerdict {
  const verdict = p.check(address, port);
  const bytes = parseIp(address);
  if (bytes !== undefined) tt.equal(p.checkBytes(bytes, port), verdict, `${address}: checkBytes agrees`);
  tt.equal(p.isAllowed(address, port), verdict === 'allowed', `${address}: isAllowed agrees`);
  return verdict;
}

function expectAll(tt: Test, p: PeerPolicy, addresses: readonly string[], expected: PeerVerdict): void {
  for (const address of addresses) tt.equal(judge(tt, p, address), expected, `${address} → ${expected}`);
}

function hex16(hi: number, lo: number): string {
  return (((hi & 0xff) << 8) | (lo & 0xff)).toString(16);
}

/** Every IPv6 spelling of the IPv4 address `v4` that a client could put in XOR-PEER-ADDRESS. */
function disguises(v4: string): Record<string, string> {
  const [a = 0, b = 0, c = 0, d = 0] = v4.split('.').map(Number);
  const hi = hex16(a, b);
  const lo = hex16(c, d);
  return {
    mapped: `::ffff:${v4}`,
    'mapped, hex': `::ffff:${hi}:${lo}`,
    'mapped, expanded upper case': `0:0:0:0:0:FFFF:${hi.toUpperCase()}:${lo.toUpperCase()}`,
    'mapped, zone': `::ffff:${v4}%eth0`,
    compatible: `::${v4}`,
    NAT64: `64:ff9b::${v4}`,
    'NAT64, hex': `64:ff9b::${hi}:${lo}`,
    '6to4': `2002:${hi}:${lo}::1`,
    '6to4, subnet and host': `2002:${hi}:${lo}:1234:5678:9abc:def0:1`,
  };
}

/** Forms that embed `v4` but are never unwrapped: denied whatever the IPv4 address is. */
function opaqueDisguises(v4: string): Record<string, [string, PeerVerdict]> {
  const [a = 0, b = 0, c = 0, d = 0] = v4.split('.').map(Number);
  return {
    'local-use NAT64 /96': [`64:ff9b:1::${v4}`, 'denied-default'],
    // RFC 6052 /48 layout: v4 in bits 48-63 and 72-95, the u octet (bits 64-71) zero.
    'local-use NAT64 /48': [`64:ff9b:1:${hex16(a, b)}:${hex16(0, c)}:${hex16(d, 0)}::`, 'denied-default'],
    'Teredo server': [`2001:0:${hex16(a, b)}:${hex16(c, d)}::1`, 'denied-always'],
    'Teredo client': [`2001:0:4136:e378:8000:63bf:${hex16(~a, ~b)}:${hex16(~c, ~d)}`, 'denied-always'],
  };
}

// Written out independently of the implementation's table: [name, first, middle, last, verdict].
const DEFAULT_ROWS: readonly (readonly [string, string, string, string, PeerVerdict])[] = [
  ['0.0.0.0/8 this network', '0.0.0.0', '0.1.2.3', '0.255.255.255', 'denied-always'],
  ['10.0.0.0/8 private', '10.0.0.0', '10.1.2.3', '10.255.255.255', 'denied-default'],
  ['100.64.0.0/10 CGNAT', '100.64.0.0', '100.100.100.100', '100.127.255.255', 'denied-default'],
  ['127.0.0.0/8 loopback', '127.0.0.0', '127.0.0.1', '127.255.255.255', 'denied-default'],
  ['169.254.0.0/16 link-local', '169.254.0.0', '169.254.169.254', '169.254.255.255', 'denied-default'],
  ['172.16.0.0/12 private', '172.16.0.0', '172.20.1.1', '172.31.255.255', 'denied-default'],
  ['192.0.0.0/24 IETF', '192.0.0.0', '192.0.0.170', '192.0.0.255', 'denied-default'],
  ['192.0.2.0/24 TEST-NET-1', '192.0.2.0', '192.0.2.1', '192.0.2.255', 'denied-default'],
  ['192.88.99.0/24 6to4 relay', '192.88.99.0', '192.88.99.1', '192.88.99.255', 'denied-default'],
  ['192.168.0.0/16 private', '192.168.0.0', '192.168.1.1', '192.168.255.255', 'denied-default'],
  ['198.18.0.0/15 benchmarking', '198.18.0.0', '198.19.1.1', '198.19.255.255', 'denied-default'],
  ['198.51.100.0/24 TEST-NET-2', '198.51.100.0', '198.51.100.7', '198.51.100.255', 'denied-default'],
  ['203.0.113.0/24 TEST-NET-3', '203.0.113.0', '203.0.113.9', '203.0.113.255', 'denied-default'],
  ['224.0.0.0/4 multicast', '224.0.0.0', '230.1.2.3', '239.255.255.255', 'denied-default'],
  ['240.0.0.0/4 reserved', '240.0.0.0', '250.1.2.3', '255.255.255.254', 'denied-default'],
  ['255.255.255.255 broadcast', '255.255.255.255', '255.255.255.255', '255.255.255.255', 'denied-default'],
  ['::/128 unspecified', '::', '0:0:0:0:0:0:0:0', '::0', 'denied-always'],
  ['::1/128 loopback', '::1', '0:0:0:0:0:0:0:1', '::0.0.0.1', 'denied-default'],
  [
    'fe80::/10 link-local',
    'fe80::',
    'fe80::1%eth0',
    'febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff',
    'denied-default',
  ],
  ['fec0::/10 site-local', 'fec0::', 'fed0::1', 'feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 'denied-default'],
  ['fc00::/7 ULA', 'fc00::', 'fd12:3456::1', 'fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 'denied-default'],
  ['ff00::/8 multicast', 'ff00::', 'ff02::1', 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', 'denied-default'],
  [
    '2001:db8::/32 documentation',
    '2001:db8::',
    '2001:db8:1::1',
    '2001:db8:ffff:ffff:ffff:ffff:ffff:ffff',
    'denied-default',
  ],
  ['100::/64 discard', '100::', '100::1', '100::ffff:ffff:ffff:ffff', 'denied-default'],
  [
    '64:ff9b:1::/48 local NAT64',
    '64:ff9b:1::',
    '64:ff9b:1::808:808',
    '64:ff9b:1:ffff:ffff:ffff:ffff:ffff',
    'denied-default',
  ],
  [
    '2001::/32 Teredo',
    '2001::',
    '2001:0:4136:e378:8000:63bf:3fff:fdd2',
    '2001:0:ffff:ffff:ffff:ffff:ffff:ffff',
    'denied-always',
  ],
  [
    '2001:2::/48 benchmarking',
    '2001:2::',
    '2001:2::1',
    '2001:2:0:ffff:ffff:ffff:ffff:ffff',
    'denied-default',
  ],
  [
    '3fff::/20 documentation',
    '3fff::',
    '3fff:123::1',
    '3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff',
    'denied-default',
  ],
  ['::ffff:0:0:0/96 SIIT', '::ffff:0:0:0', '::ffff:0:7f00:1', '::ffff:0:ffff:ffff', 'denied-default'],
];

// Just outside a default range, and public.
const NEIGHBOURS = [
  '1.0.0.0',
  '9.255.255.255',
  '11.0.0.0',
  '100.63.255.255',
  '100.128.0.0',
  '126.255.255.255',
  '128.0.0.0',
  '169.253.255.255',
  '169.255.0.0',
  '172.15.255.255',
  '172.32.0.0',
  '191.255.255.255',
  '192.0.1.255',
  '192.0.3.0',
  '192.88.98.255',
  '192.88.100.0',
  '192.167.255.255',
  '192.169.0.0',
  '198.17.255.255',
  '198.20.0.0',
  '198.51.99.255',
  '198.51.101.0',
  '203.0.112.255',
  '203.0.114.0',
  '223.255.255.255',
  '2001:1::',
  '2001:2:1::',
  '2001:db7:ffff:ffff:ffff:ffff:ffff:ffff',
  '2001:db9::',
  '100:0:0:1::',
  '3fff:1000::',
  '::fffe:ffff:ffff',
  '::1:0:0:0',
];

const PUBLIC = [
  '8.8.8.8',
  '1.1.1.1',
  '9.9.9.9',
  '2606:4700::1111',
  '2001:4860:4860::8888',
  '2a00:1450:4001::1',
  '::ffff:8.8.8.8',
  '::8.8.8.8',
  '64:ff9b::8.8.8.8',
  '64:ff9b::101:101',
  '2002:808:808::1',
];

const INTERNAL = ['127.0.0.1', '10.0.0.1', '169.254.169.254', '192.168.1.1'];

t.test('every default-denied range: first, middle and last address', async (t) => {
  const p = policy();
  for (const [name, ...rest] of DEFAULT_ROWS) {
    const expected = rest[3];
    for (const address of rest.slice(0, 3)) t.equal(judge(t, p, address), expected, `${name}: ${address}`);
  }
});

t.test('just outside the default ranges, and public addresses, are allowed', async (t) => {
  const p = policy();
  expectAll(t, p, NEIGHBOURS, 'allowed');
  expectAll(t, p, PUBLIC, 'allowed');
  t.equal(judge(t, p, '8.8.8.8', 0), 'allowed', 'port 0 is a port (CreatePermission ignores it)');
  t.equal(judge(t, p, '8.8.8.8', 65535), 'allowed');
});

t.test('every IPv6 disguise of an internal IPv4 address is judged as that address', async (t) => {
  const p = policy();
  for (const v4 of INTERNAL) {
    t.equal(judge(t, p, v4), 'denied-default', v4);
    for (const [form, address] of Object.entries(disguises(v4))) {
      t.equal(judge(t, p, address), 'denied-default', `${v4} ${form}: ${address}`);
    }
    for (const [form, [address, expected]] of Object.entries(opaqueDisguises(v4))) {
      t.equal(judge(t, p, address), expected, `${v4} ${form}: ${address}`);
    }
  }
  // Spelled out, so a mistake in disguises() cannot hide one in the policy.
  expectAll(
    t,
    p,
    [
      '::ffff:7f00:1',
      '::ffff:127.0.0.1',
      '::127.0.0.1',
      '::7f00:1',
      '64:ff9b::7f00:1',
      '2002:7f00:1::',
      '2002:a9fe:a9fe::1',
      '::ffff:a9fe:a9fe',
      '64:ff9b::a00:1',
      '2002:c0a8:101:ffff::',
    ],
    'denied-default',
  );
  expectAll(
    t,
    p,
    ['::ffff:0.0.0.0', '::ffff:0:0', '::0.0.0.2', '64:ff9b::', '2002::', '2002:0:ffff::1', '2001:0:7f00:1::'],
    'denied-always',
  );
  // Disguises of public addresses stay allowed (covered by PUBLIC), and the canonical check looks only at
  // the embedded address: the 6to4 subnet/host bits and NAT64's zero words decide nothing else.
  expectAll(t, p, ['2002:808:808:ffff:ffff:ffff:ffff:ffff', '64:ff9b::5db8:d822'], 'allowed');
  t.equal(judge(t, p, '64:ff9b::e000:1'), 'denied-default', 'NAT64 of multicast 224.0.0.1');
});

t.test('embeddedIPv4 unwraps mapped, compatible, NAT64 and 6to4, nothing else', async (t) => {
  const cases: [string, string | undefined][] = [
    ['::ffff:127.0.0.1', '127.0.0.1'],
    ['::ffff:0.0.0.0', '0.0.0.0'],
    ['::10.0.0.1', '10.0.0.1'],
    ['::0.0.0.2', '0.0.0.2'],
    ['64:ff9b::169.254.169.254', '169.254.169.254'],
    ['2002:c0a8:101::1', '192.168.1.1'],
    ['2002:0808:0404:ffff:1:2:3:4', '8.8.4.4'],
    ['::', undefined],
    ['::1', undefined],
    ['::1:0:0:0', undefined],
    ['::ffff:0:7f00:1', undefined],
    ['::fffe:7f00:1', undefined],
    ['0:1::ffff:7f00:1', undefined],
    ['64:ff9b:1::7f00:1', undefined],
    ['64:ff9b:0:0:1::7f00:1', undefined],
    ['64:ff9a::7f00:1', undefined],
    ['2003:7f00:1::', undefined],
    ['2001:0:7f00:1::', undefined],
    ['2606:4700::1111', undefined],
  ];
  for (const [address, expected] of cases) {
    const v4 = embeddedIPv4(parseIp(address)!);
    t.equal(v4 === undefined ? undefined : formatIp(v4), expected, `${address} → ${expected}`);
  }
  t.equal(embeddedIPv4(parseIp('127.0.0.1')!), undefined, '4 bytes: nothing embedded');
  t.equal(embeddedIPv4(new Uint8Array(15)), undefined, '15 bytes');
  const bytes = parseIp('2002:c0a8:101::1')!;
  const view = embeddedIPv4(bytes)!;
  t.equal(view.length, 4);
  t.equal(view.buffer, bytes.buffer, 'a view, not a copy');
});

t.test('allowed-peer-ip 127.0.0.1 opens it and its disguises, not 0.0.0.0 or ::', async (t) => {
  const p = policy({ allowed: ['127.0.0.1'] });
  expectAll(
    t,
    p,
    ['127.0.0.1', '::ffff:127.0.0.1', '::ffff:7f00:1', '::127.0.0.1', '64:ff9b::7f00:1', '2002:7f00:1::1'],
    'allowed',
  );
  for (const address of Object.values(disguises('127.0.0.1')))
    t.equal(judge(t, p, address), 'allowed', address);
  expectAll(t, p, ['127.0.0.2', '127.255.255.255', '::1', '64:ff9b:1::7f00:1', '10.0.0.1'], 'denied-default');
  expectAll(t, p, ['2001:0:7f00:1::', '2001:0:4136:e378:8000:63bf:80ff:fffe'], 'denied-always');
  expectAll(t, p, ['0.0.0.0', '::', '::ffff:0.0.0.0'], 'denied-always');

  const everything = policy({ allowed: ['0.0.0.0/0', '::/0'] });
  expectAll(
    t,
    everything,
    ['0.0.0.0', '0.0.0.1', '0.255.255.255', '::', '::ffff:0.0.0.0', '64:ff9b::', '2002::1', '2001::1'],
    'denied-always',
  );
  expectAll(t, everything, ['127.0.0.1', '10.0.0.1', '::1', 'fe80::1', 'ff02::1', '64:ff9b:1::1'], 'allowed');
  const zero = policy({ allowed: ['0.0.0.0', '0.0.0.0/8', '::', '::/128', '2001::/32', '::ffff:0.0.0.0'] });
  expectAll(t, zero, ['0.0.0.0', '0.1.2.3', '::', '::ffff:0.0.0.0', '2001::1'], 'denied-always');
});

t.test('allow list: CIDR, a-b range and single-address forms, IPv4 and IPv6', async (t) => {
  const cidr = policy({ allowed: ['10.0.0.0/8', '192.168.1.77/24', 'fd00::/16', '169.254.169.254/32'] });
  expectAll(
    t,
    cidr,
    ['10.0.0.0', '10.5.5.5', '10.255.255.255', '::ffff:10.5.5.5', '2002:a05:505::'],
    'allowed',
  );
  expectAll(t, cidr, ['192.168.1.0', '192.168.1.77', '192.168.1.255', 'fd00::1', 'fd00:ffff::1'], 'allowed');
  t.equal(judge(t, cidr, '169.254.169.254'), 'allowed', '/32');
  expectAll(
    t,
    cidr,
    ['172.16.0.1', '192.168.0.255', '192.168.2.0', 'fd01::1', 'fc00::1', '169.254.169.253'],
    'denied-default',
  );

  const range = policy({
    allowed: ['10.0.0.5-10.0.0.9', 'fd00::5-fd00::9', '::ffff:192.168.0.1-::ffff:192.168.0.3'],
  });
  expectAll(
    t,
    range,
    ['10.0.0.5', '10.0.0.7', '10.0.0.9', '64:ff9b::10.0.0.9', 'fd00::5', 'fd00::9'],
    'allowed',
  );
  expectAll(t, range, ['10.0.0.4', '10.0.0.10', 'fd00::4', 'fd00::a', 'fd00::1:5'], 'denied-default');
  expectAll(t, range, ['192.168.0.1', '192.168.0.3', '::ffff:192.168.0.2'], 'allowed');
  t.equal(judge(t, range, '192.168.0.4'), 'denied-default', 'an IPv4-mapped range is an IPv4 range');

  const mapped = policy({ allowed: ['::ffff:127.0.0.1', '::ffff:10.0.0.0/104'] });
  expectAll(t, mapped, ['127.0.0.1', '64:ff9b::7f00:1', '10.9.9.9', '2002:a09:909::'], 'allowed');
  expectAll(
    t,
    mapped,
    ['127.0.0.2', '::ffff:127.0.0.2', '172.16.0.1', '::ffff:172.16.0.1'],
    'denied-default',
  );

  const wide = policy({ allowed: ['fe80::/10', '::1', 'ff00::/8'] });
  expectAll(t, wide, ['fe80::1', 'febf::1', '::1', 'ff02::1'], 'allowed');
  expectAll(t, wide, ['fec0::1', '127.0.0.1', '::ffff:127.0.0.1'], 'denied-default');
});

t.test('denied-peer-ip on a public address covers its IPv6 disguises', async (t) => {
  const p = policy({ denied: ['8.8.8.8', '1.1.1.0/24', '9.9.9.1-9.9.9.9', '2606:4700::/32'] });
  for (const [form, address] of Object.entries(disguises('8.8.8.8'))) {
    t.equal(judge(t, p, address), 'denied-list', `8.8.8.8 ${form}: ${address}`);
  }
  expectAll(t, p, ['8.8.8.8', '1.1.1.0', '1.1.1.255', '::ffff:1.1.1.1', '9.9.9.1', '9.9.9.9'], 'denied-list');
  expectAll(
    t,
    p,
    ['2606:4700::', '2606:4700::1111', '2606:4700:ffff:ffff:ffff:ffff:ffff:ffff'],
    'denied-list',
  );
  expectAll(
    t,
    p,
    ['8.8.8.7', '8.8.8.9', '8.8.4.4', '1.1.2.0', '9.9.9.0', '9.9.9.10', '2606:4701::'],
    'allowed',
  );
  expectAll(t, p, ['64:ff9b:1::808:808', '10.0.0.1'], 'denied-default');
  t.equal(judge(t, p, '2001:0:808:808::'), 'denied-always');

  const mapped = policy({ denied: ['::ffff:8.8.8.0/120'] });
  expectAll(t, mapped, ['8.8.8.8', '2002:808:808::1'], 'denied-list');
  t.equal(judge(t, mapped, '8.8.9.8'), 'allowed');
});

t.test('the allow list beats the deny list (and the defaults)', async (t) => {
  const p = policy({
    allowed: ['8.8.8.8', '10.0.0.1', 'fd00::1'],
    denied: ['8.8.8.0/24', '10.0.0.0/8', 'fd00::/8'],
  });
  expectAll(t, p, ['8.8.8.8', '::ffff:8.8.8.8', '64:ff9b::808:808', '2002:808:808::'], 'allowed');
  expectAll(t, p, ['10.0.0.1', '::ffff:10.0.0.1', 'fd00::1'], 'allowed');
  expectAll(t, p, ['8.8.8.9', '::ffff:8.8.8.9'], 'denied-list');
  expectAll(t, p, ['10.0.0.2', 'fd00::2'], 'denied-default');
  const order = policy({ allowed: ['0.0.0.0/0'], denied: ['0.0.0.0/0'] });
  expectAll(t, order, ['8.8.8.8', '127.0.0.1'], 'allowed');
});

t.test('IPv6 items see the raw form of a disguised address: they add denials, never lift one', async (t) => {
  const nat64 = policy({ denied: ['64:ff9b::/96', '2002::/16'] });
  expectAll(t, nat64, ['64:ff9b::808:808', '2002:808:808::1'], 'denied-list');
  expectAll(t, nat64, ['8.8.8.8', '::ffff:8.8.8.8', '::8.8.8.8'], 'allowed');
  t.equal(judge(t, nat64, '64:ff9b::a00:1'), 'denied-default', 'the IPv4 verdict comes first');

  const lifted = policy({ denied: ['64:ff9b::/96'], allowed: ['64:ff9b::808:808'] });
  t.equal(judge(t, lifted, '64:ff9b::808:808'), 'allowed', 'an IPv6 allow item lifts an IPv6 deny item');
  t.equal(judge(t, lifted, '64:ff9b::808:404'), 'denied-list');
  const byV4 = policy({ denied: ['64:ff9b::/96'], allowed: ['8.8.8.8'] });
  t.equal(
    judge(t, byV4, '64:ff9b::808:808'),
    'allowed',
    'so does an IPv4 allow item for the embedded address',
  );

  const noReopen = policy({ allowed: ['::/0', '64:ff9b::/96', '2002::/16', '::/96', '64:ff9b::a00:1'] });
  expectAll(
    t,
    noReopen,
    ['::ffff:127.0.0.1', '64:ff9b::a00:1', '2002:7f00:1::', '::10.0.0.1'],
    'denied-default',
  );
  expectAll(t, noReopen, ['::1', 'fe80::1'], 'allowed');
  const v4Denied = policy({ allowed: ['2002::/16'], denied: ['8.8.8.8'] });
  t.equal(
    judge(t, v4Denied, '2002:808:808::'),
    'denied-list',
    'an IPv6 allow item cannot lift an IPv4 denial',
  );
});

t.test("the server's own service ports are never peers", async (t) => {
  const ownServices = [
    { address: '1.2.3.4', port: 3478 },
    { address: '2606:4700::1', port: 5349 },
    { address: '::ffff:10.1.1.1', port: 9641 },
    { address: '127.0.0.1', port: 9641 },
  ];
  const p = policy({ allowed: ['1.2.3.4', '0.0.0.0/0', '::/0'], ownServices });
  const own: [string, number][] = [
    ['1.2.3.4', 3478],
    ['::ffff:1.2.3.4', 3478],
    ['::1.2.3.4', 3478],
    ['64:ff9b::102:304', 3478],
    ['2002:102:304::1', 3478],
    ['2606:4700::1', 5349],
    ['2606:4700:0:0:0:0:0:1', 5349],
    ['10.1.1.1', 9641],
    ['::ffff:10.1.1.1', 9641],
    ['127.0.0.1', 9641],
    ['::ffff:127.0.0.1', 9641],
  ];
  for (const [address, port] of own)
    t.equal(judge(t, p, address, port), 'denied-own-service', `${address}:${port}`);
  const other: [string, number][] = [
    ['1.2.3.4', 3479],
    ['::ffff:1.2.3.4', 3477],
    ['1.2.3.5', 3478],
    ['2606:4700::1', 5350],
    ['2606:4700::2', 5349],
    ['10.1.1.1', 9640],
    ['127.0.0.1', 3478],
  ];
  for (const [address, port] of other) t.equal(judge(t, p, address, port), 'allowed', `${address}:${port}`);
  t.equal(judge(t, p, '0.0.0.0', 3478), 'denied-always');

  const plain = policy({ ownServices });
  t.equal(judge(t, plain, '1.2.3.4', 3478), 'denied-own-service', 'without any list');
  t.equal(judge(t, plain, '1.2.3.4', 80), 'allowed');
  t.equal(judge(t, plain, '127.0.0.1', 9641), 'denied-own-service');
  t.equal(judge(t, plain, '127.0.0.1', 9640), 'denied-default');
});

t.test('invalid addresses and ports', async (t) => {
  const p = policy({ allowed: ['0.0.0.0/0', '::/0'] });
  const bad = [
    '',
    'localhost',
    '1.2.3',
    '1.2.3.4.5',
    '256.1.1.1',
    '01.2.3.4',
    ' 1.2.3.4',
    '1.2.3.4/32',
    '[::1]',
    ':::',
    '1::2::3',
    '1:2:3:4:5:6:7:8:9',
    '::ffff:1.2.3.256',
    'g::1',
  ];
  for (const address of bad) {
    t.equal(p.check(address, PORT), 'invalid', JSON.stringify(address));
    t.equal(p.isAllowed(address, PORT), false);
  }
  for (const port of [-1, 65536, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
    t.equal(p.check('8.8.8.8', port), 'invalid', `port ${port}`);
    t.equal(p.check('2606:4700::1111', port), 'invalid', `IPv6, port ${port}`);
    t.equal(p.check('::ffff:8.8.8.8', port), 'invalid', `mapped, port ${port}`);
  }
  for (const length of [0, 3, 5, 15, 17])
    t.equal(p.checkBytes(new Uint8Array(length), PORT), 'invalid', `${length} bytes`);
  t.equal(p.checkBytes(Buffer.from([8, 8, 8, 8]), PORT), 'allowed', 'a Buffer is a Uint8Array');
});

t.test('the constructor accepts exactly what checkPeerPattern accepts', async (t) => {
  const items = [
    '10.0.0.1',
    '10.0.0.0/8',
    '10.1.2.3/8',
    '10.0.0.0/08',
    '10.0.0.0/0',
    '10.0.0.0/32',
    '10.0.0.1-10.0.0.9',
    '10.0.0.1-10.0.0.1',
    '::1',
    '::',
    'fc00::/7',
    '::/0',
    '::1/128',
    '::1-::2',
    '::-::1',
    '1::-1::1',
    '2001:db8::-2001:db8:0:0:0:0:0:ffff',
    '::ffff:10.0.0.1-::ffff:10.0.0.2',
    '::ffff:0:0/96',
    'fe80::1%eth0',
    'fe80::%eth0/64',
    '10.0.0.0/33',
    'fc00::/129',
    '10.0.0.0/x',
    '10.0.0.0/',
    '10.0.0.0/1000',
    '10.0.0.0/-1',
    '10.0.0.0/8/8',
    '10.0.0.9-10.0.0.1',
    '::2-::1',
    '2001:db8::1:0-2001:db8::ff',
    '::ffff:10.0.0.2-::ffff:10.0.0.1',
    '10.0.0.1-::1',
    '10.0.0.1-',
    '-10.0.0.1',
    '10.0.0.1-10.0.0.2-10.0.0.3',
    '10.0.0.1-10.0.0.9/8',
    'host.example',
    '',
    '010.0.0.1',
    'fe80::1%eth-0',
  ];
  for (const item of items) {
    const expectedOk = checkPeerPattern(item) === undefined;
    for (const key of ['allowed', 'denied'] as const) {
      const build = () => policy({ [key]: [item] });
      if (expectedOk) t.doesNotThrow(build, `${key} ${JSON.stringify(item)} accepted`);
      else t.throws(build, TypeError, `${key} ${JSON.stringify(item)} refused`);
    }
  }
  t.throws(() => policy({ ownServices: [{ address: 'localhost', port: 3478 }] }), TypeError);
  t.throws(() => policy({ ownServices: [{ address: '1.2.3.4', port: 65536 }] }), TypeError);
  t.throws(() => policy({ ownServices: [{ address: '1.2.3.4', port: -1 }] }), TypeError);
});

t.test(
  'randomized: agrees with a node:net BlockList of the literal ranges; disguises change nothing',
  async (t) => {
    // The same ranges as DEFAULT_ROWS, as node:net subnets (an independent matcher).
    const v4Subnets: [string, number][] = [
      ['10.0.0.0', 8],
      ['100.64.0.0', 10],
      ['127.0.0.0', 8],
      ['169.254.0.0', 16],
      ['172.16.0.0', 12],
      ['192.0.0.0', 24],
      ['192.0.2.0', 24],
      ['192.88.99.0', 24],
      ['192.168.0.0', 16],
      ['198.18.0.0', 15],
      ['198.51.100.0', 24],
      ['203.0.113.0', 24],
      ['224.0.0.0', 4],
      ['240.0.0.0', 4],
    ];
    const defaults = new BlockList();
    for (const [net, bits] of v4Subnets) defaults.addSubnet(net, bits, 'ipv4');
    const operatorDeny = ['8.0.0.0/8', '1.1.1.1-1.1.1.200'];
    const operatorAllow = ['10.10.0.0/16', '8.8.8.8', '127.0.0.1-127.0.0.5', '1.1.1.100'];
    const deny = new BlockList();
    deny.addSubnet('8.0.0.0', 8, 'ipv4');
    deny.addRange('1.1.1.1', '1.1.1.200', 'ipv4');
    const allow = new BlockList();
    allow.addSubnet('10.10.0.0', 16, 'ipv4');
    allow.addAddress('8.8.8.8', 'ipv4');
    allow.addRange('127.0.0.1', '127.0.0.5', 'ipv4');
    allow.addAddress('1.1.1.100', 'ipv4');

    const plain = policy();
    const listed = policy({ allowed: operatorAllow, denied: operatorDeny });
    const rng = new Rng(0x5eed);
    const anchors = [
      ...v4Subnets.map(([net]) => net),
      '8.8.8.0',
      '1.1.1.0',
      '127.0.0.0',
      '10.10.0.0',
      '0.0.0.0',
    ];
    let mismatches = 0;
    for (let i = 0; i < 4000; i++) {
      const bytes = rng.bytes(4);
      if (i % 2 === 0) {
        // Half near a range start, so small ranges are hit too.
        const base = parseIp(rng.pick(anchors))!;
        bytes.set(base.subarray(0, 2 + rng.int(3)));
      }
      const v4 = formatIp(bytes);
      const expectPlain: PeerVerdict =
        bytes[0] === 0 ? 'denied-always' : defaults.check(v4, 'ipv4') ? 'denied-default' : 'allowed';
      let expectListed: PeerVerdict = expectPlain;
      if (expectPlain !== 'denied-always') {
        if (allow.check(v4, 'ipv4')) expectListed = 'allowed';
        else if (expectPlain === 'allowed' && deny.check(v4, 'ipv4')) expectListed = 'denied-list';
      }
      const forms = [v4, ...Object.values(disguises(v4))];
      for (const form of forms) {
        const port = rng.int(65536);
        if (plain.check(form, port) !== expectPlain || listed.check(form, port) !== expectListed) {
          mismatches++;
          t.fail(
            `${form}: ${plain.check(form, port)}/${listed.check(form, port)}, want ${expectPlain}/${expectListed}`,
          );
        }
      }
    }
    t.equal(mismatches, 0, '4000 addresses × 10 forms');
  },
);
