/**
 * The plain-JS HMAC-SHA1/SHA-256 against node:crypto: RFC 2202/4231 style edge cases (empty
 * message, keys longer than a block, every length around the 55/56/64-byte padding boundaries) and
 * random keys, messages and piecewise feeding.
 */
import { createHmac, randomBytes } from 'node:crypto';
import t from 'tap';
import { HmacKey } from '../../../src/core/crypto/hmac.js';
import { Rng } from '../../fixtures/helpers/random.js';

const ALGORITHMS = ['sha1', 'sha256'] as const;

t.test('RFC 2202 and RFC 4231 test case 2 ("Jefe")', async (t) => {
  const data = Buffer.from('what do ya want for nothing?');
  t.equal(
    new HmacKey('sha1', Buffer.from('Jefe')).digest(data).toString('hex'),
    'effcdf6ae5eb2fa2d27416d5f184df9c259a7c79',
  );
  t.equal(
    new HmacKey('sha256', Buffer.from('Jefe')).digest(data).toString('hex'),
    '5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843',
  );
});

t.test('every message length from 0 to 200 and key lengths around the block size', async (t) => {
  let checked = 0;
  for (const algorithm of ALGORITHMS) {
    for (const keyLength of [0, 1, 16, 20, 32, 63, 64, 65, 100, 200]) {
      const key = randomBytes(keyLength);
      const k = new HmacKey(algorithm, key);
      for (let n = 0; n <= 200; n++) {
        const msg = randomBytes(n);
        const want = createHmac(algorithm, key).update(msg).digest();
        if (!k.digest(msg).equals(want)) t.fail(`${algorithm} key ${keyLength} B, message ${n} B`);
        checked++;
      }
    }
  }
  t.equal(checked, 2 * 10 * 201, 'all compared');
});

t.test('random pieces, offsets into larger buffers, and output at an offset', async (t) => {
  const rng = new Rng(0x4d4143);
  for (let i = 0; i < 3000; i++) {
    const algorithm = ALGORITHMS[rng.int(2)]!;
    const key = rng.bytes(rng.int(100));
    const msg = rng.bytes(rng.int(1500));
    const k = new HmacKey(algorithm, key);
    k.begin();
    let at = 0;
    while (at < msg.length) {
      const next = Math.min(msg.length, at + rng.int(130));
      // The same bytes inside a larger buffer, fed by start/end.
      const host = Buffer.concat([rng.bytes(7), msg.subarray(at, next), rng.bytes(3)]);
      k.update(host, 7, 7 + (next - at));
      at = next;
    }
    const out = Buffer.alloc(k.length + 5, 0xee);
    k.end(out, 5);
    const want = createHmac(algorithm, key).update(msg).digest();
    if (!out.subarray(5).equals(want) || out[4] !== 0xee) {
      t.fail(`case ${i}: ${algorithm}, key ${key.length} B, message ${msg.length} B`);
      return;
    }
  }
  t.pass('3000 random cases agree');
});

t.test('keys are independent; begin() abandons a computation in progress', async (t) => {
  const a = new HmacKey('sha1', Buffer.from('key a'));
  const b = new HmacKey('sha1', Buffer.from('key b'));
  const msg = Buffer.from('the same message');
  a.begin().update(Buffer.from('half of something else'));
  t.same(a.digest(msg), createHmac('sha1', 'key a').update(msg).digest());
  t.same(b.digest(msg), createHmac('sha1', 'key b').update(msg).digest());
  t.same(a.digest(msg), createHmac('sha1', 'key a').update(msg).digest());
});
