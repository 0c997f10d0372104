import { isIP } from 'node:net';
import t from 'tap';
import { formatIp, ipVersion, parseIp } from '../../src/core/ip.js';
import { Rng } from '../fixtures/helpers/random.js';

t.test('parse and format agree with node:net on valid and invalid forms', async (t) => {
  const valid = [
    '0.0.0.0',
    '127.0.0.1',
    '255.255.255.255',
    '::',
    '::1',
    '1::',
    'fe80::1',
    '2001:db8::1',
    '2001:db8:0:0:1:0:0:1',
    '::ffff:192.0.2.1',
    '64:ff9b::192.0.2.1',
    '1:2:3:4:5:6:7:8',
    '1:2:3:4:5:6:7::',
    '::2:3:4:5:6:7:8',
    'fe80::1%eth0',
  ];
  for (const ip of valid) {
    t.ok(parseIp(ip), ip);
    t.equal(ipVersion(ip), isIP(ip), `${ip} version`);
  }
  const invalid = [
    '',
    '1.2.3',
    '1.2.3.4.5',
    '256.1.1.1',
    '01.2.3.4',
    '1.2.3.4 ',
    ':::',
    '1:2:3:4:5:6:7:8:9',
    '1::2::3',
    ':1::',
    '1:',
    'g::1',
    '12345::',
    '::ffff:1.2.3',
    'a.b.c.d',
    '1:2:3:4:5:6:7:1.2.3.4',
  ];
  for (const ip of invalid) {
    t.equal(parseIp(ip), undefined, `${JSON.stringify(ip)} refused`);
    t.equal(ipVersion(ip), 0);
  }
});

t.test('RFC 5952 formatting', async (t) => {
  const cases: Array<[string, string]> = [
    ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['0:0:0:0:0:0:0:0', '::'],
    ['0:0:0:0:0:0:0:1', '::1'],
    ['1:0:0:0:0:0:0:0', '1::'],
    ['::ffff:c000:0201', '::ffff:192.0.2.1'],
    ['FE80::A', 'fe80::a'],
  ];
  for (const [input, want] of cases) t.equal(formatIp(parseIp(input)!), want, input);
  const rng = new Rng(99);
  for (let i = 0; i < 2000; i++) {
    const b = rng.bytes(16);
    for (let k = 0; k < 16; k++) if (rng.int(3) === 0) b[k] = 0;
    const text = formatIp(b);
    t.equal(isIP(text), 6);
    if (!Buffer.from(parseIp(text)!).equals(b)) t.fail(text);
  }
});
