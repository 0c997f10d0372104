import { createHmac } from 'node:crypto';
import t from 'tap';
import {
  COOKIE_NONCE_LENGTH,
  NONCE_BAD,
  NONCE_COOKIE,
  NONCE_HAS_COOKIE,
  NONCE_STALE,
  NonceCodec,
  PLAIN_NONCE_LENGTH,
  SecurityFeature,
} from '../../../src/core/auth/nonce.js';

const SECRET = Buffer.from('0123456789abcdef0123456789abcdef', 'hex');
const BOTH = SecurityFeature.PasswordAlgorithms | SecurityFeature.UsernameAnonymity;
const NOW = 1_700_000_000;

function issue(codec: NonceCodec, ip: string, port: number, now: number, features: number | null): Buffer {
  return Buffer.from(codec.issue(ip, port, now, features)); // copy: issue returns a reused view
}

t.test('format: cookie, feature bits, base64url body, lengths', async (t) => {
  const codec = new NonceCodec(SECRET, 600);
  const cookie = issue(codec, '192.0.2.1', 40000, NOW, BOTH).toString('latin1');
  t.equal(cookie.length, COOKIE_NONCE_LENGTH);
  t.equal(COOKIE_NONCE_LENGTH, 29, 'short: ≤ 32 characters with the cookie');
  t.ok(cookie.startsWith(NONCE_COOKIE));
  // RFC 8489 §9.2/§18.1: bit 0 is the most significant bit of the first byte → 0xC00000.
  t.equal(cookie.slice(9, 13), 'wAAA');
  t.equal(Buffer.from(cookie.slice(9, 13), 'base64').toString('hex'), 'c00000');
  t.match(cookie.slice(13), /^[A-Za-z0-9_-]{16}$/);
  const body = Buffer.from(cookie.slice(13), 'base64url');
  t.equal(body.readUInt32BE(0), NOW, 'issue time in clear');

  const onlyAlgorithms = issue(codec, '192.0.2.1', 40000, NOW, SecurityFeature.PasswordAlgorithms);
  t.equal(onlyAlgorithms.toString('latin1', 9, 13), 'gAAA', 'the RFC 8656 example value for this bit');

  const plain = issue(codec, '192.0.2.1', 40000, NOW, null).toString('latin1');
  t.equal(plain.length, PLAIN_NONCE_LENGTH);
  t.notOk(plain.startsWith(NONCE_COOKIE));
  t.match(plain, /^[A-Za-z0-9_-]{16}$/);
});

t.test(
  'MAC is HMAC-SHA256 over time, cookie flag, features, port and IP, truncated to 8 bytes',
  async (t) => {
    const codec = new NonceCodec(SECRET, 600);
    const nonce = issue(codec, '2001:db8::7', 3478, NOW, BOTH).toString('latin1');
    const input = Buffer.alloc(10);
    input.writeUInt32BE(NOW, 0);
    input.writeUInt32BE(0x01c00000, 4);
    input.writeUInt16BE(3478, 8);
    const mac = createHmac('sha256', SECRET).update(input).update('2001:db8::7').digest();
    t.same(Buffer.from(nonce.slice(13), 'base64url').subarray(4), mac.subarray(0, 8));
  },
);

t.test('check: accepts its own, with features', async (t) => {
  const codec = new NonceCodec(SECRET, 600);
  const cookie = issue(codec, '192.0.2.1', 40000, NOW, BOTH);
  t.equal(codec.check(cookie, '192.0.2.1', 40000, NOW + 10), BOTH | NONCE_HAS_COOKIE);
  const plain = issue(codec, '192.0.2.1', 40000, NOW, null);
  t.equal(codec.check(plain, '192.0.2.1', 40000, NOW), 0);
  const zero = issue(codec, '192.0.2.1', 40000, NOW, 0);
  t.equal(zero.toString('latin1', 9, 13), 'AAAA');
  t.equal(codec.check(zero, '192.0.2.1', 40000, NOW), NONCE_HAS_COOKIE, 'cookie with no features');
});

t.test('check: bound to the client IP and port', async (t) => {
  const codec = new NonceCodec(SECRET, 600);
  const n = issue(codec, '192.0.2.1', 40000, NOW, BOTH);
  t.equal(codec.check(n, '192.0.2.2', 40000, NOW), NONCE_BAD, 'other IP');
  t.equal(codec.check(n, '192.0.2.1', 40001, NOW), NONCE_BAD, 'other port');
  t.equal(codec.check(n, '::ffff:192.0.2.1', 40000, NOW), NONCE_BAD, 'other spelling is another address');
  t.not(
    issue(codec, '192.0.2.1', 40000, NOW, BOTH).toString(),
    issue(codec, '192.0.2.1', 40001, NOW, BOTH).toString(),
    'different addresses never share a nonce (RFC 8489 §9.2.4)',
  );
});

t.test('check: expiry and clock skew', async (t) => {
  const codec = new NonceCodec(SECRET, 600);
  const n = issue(codec, '192.0.2.1', 40000, NOW, null);
  t.equal(codec.check(n, '192.0.2.1', 40000, NOW + 599), 0);
  t.equal(codec.check(n, '192.0.2.1', 40000, NOW + 600), NONCE_STALE);
  t.equal(codec.check(n, '192.0.2.1', 40000, NOW + 10_000_000), NONCE_STALE);
  t.equal(codec.check(n, '192.0.2.1', 40000, NOW - 60), 0, 'a minute in the future is tolerated');
  t.equal(codec.check(n, '192.0.2.1', 40000, NOW - 61), NONCE_STALE, 'further is not');
});

t.test('check: another key, tampering and malformed values are bad', async (t) => {
  const codec = new NonceCodec(SECRET, 600);
  const other = new NonceCodec(Buffer.alloc(32, 7), 600);
  const n = issue(codec, '192.0.2.1', 40000, NOW, BOTH);
  t.equal(other.check(n, '192.0.2.1', 40000, NOW), NONCE_BAD, 'not ours');

  // Every single-character change is refused (cookie, features, time, MAC).
  let accepted = 0;
  for (let i = 0; i < n.length; i++) {
    for (const c of 'AgwQ_-+/=0z.') {
      if (n[i] === c.charCodeAt(0)) continue;
      const m = Buffer.from(n);
      m[i] = c.charCodeAt(0);
      if (codec.check(m, '192.0.2.1', 40000, NOW) >= 0) accepted++;
    }
  }
  t.equal(accepted, 0, 'no tampered nonce accepted');

  // Altering the feature bits (bid-down: drop "Password algorithms") breaks the MAC.
  const downgraded = Buffer.from(n);
  downgraded.write('QAAA', 9, 'latin1');
  t.equal(codec.check(downgraded, '192.0.2.1', 40000, NOW), NONCE_BAD);
  // Stripping the cookie altogether as well.
  t.equal(codec.check(n.subarray(13), '192.0.2.1', 40000, NOW), NONCE_BAD);

  t.equal(codec.check(Buffer.alloc(0), '192.0.2.1', 40000, NOW), NONCE_BAD, 'empty');
  t.equal(codec.check(n.subarray(0, 28), '192.0.2.1', 40000, NOW), NONCE_BAD, 'short');
  t.equal(codec.check(Buffer.concat([n, Buffer.from('A')]), '192.0.2.1', 40000, NOW), NONCE_BAD, 'long');
  const notCookie = Buffer.from(n);
  notCookie[0] = 0x4f; // 'O'
  t.equal(codec.check(notCookie, '192.0.2.1', 40000, NOW), NONCE_BAD, '29 bytes without the cookie');
  const badFeatureChar = Buffer.from(n);
  badFeatureChar[10] = 0x2d; // '-' is not standard base64
  t.equal(codec.check(badFeatureChar, '192.0.2.1', 40000, NOW), NONCE_BAD);
  const highByte = Buffer.from(n);
  highByte[20] = 0xc3;
  t.equal(codec.check(highByte, '192.0.2.1', 40000, NOW), NONCE_BAD, 'non-ASCII');
});

t.test('issue returns a view that the next call overwrites', async (t) => {
  const codec = new NonceCodec(SECRET, 600);
  const a = codec.issue('192.0.2.1', 1, NOW, null);
  const copy = Buffer.from(a);
  codec.issue('192.0.2.9', 2, NOW + 1, null);
  t.not(a.toString(), copy.toString());
});

t.test('odd inputs never throw', async (t) => {
  const codec = new NonceCodec(SECRET, 600);
  t.doesNotThrow(() => codec.issue('x', 70000, -5, 0x7fffffff));
  t.doesNotThrow(() => codec.issue('', -1, 2 ** 40, null));
  const n = issue(codec, 'x', 70000, 12.7, null);
  t.equal(codec.check(n, 'x', 70000 & 0xffff, 12), 0);
});

t.test('constructor validates its options', async (t) => {
  t.throws(() => new NonceCodec(Buffer.alloc(15), 600), RangeError);
  t.throws(() => new NonceCodec(SECRET, 0), RangeError);
  t.throws(() => new NonceCodec(SECRET, 1.5), RangeError);
  t.throws(() => new NonceCodec(SECRET, Number.NaN), RangeError);
  const key = Buffer.from(SECRET);
  const codec = new NonceCodec(key, 600);
  const n = issue(codec, '192.0.2.1', 1, NOW, null);
  key.fill(0);
  t.equal(codec.check(n, '192.0.2.1', 1, NOW), 0, 'the secret is copied');
});
