import { createHash, createHmac } from 'node:crypto';
import t from 'tap';
import { parseStaticUser, StaticUsers, userHash } from '../../../src/core/auth/credentials.js';
import { parseRestUsername, restPassword } from '../../../src/core/auth/rest-secret.js';

const md5 = (s: string) => createHash('md5').update(s).digest();
const sha256 = (s: string) => createHash('sha256').update(s).digest();

t.test('RFC 8489 §9.2.2 example key', async (t) => {
  const u = parseStaticUser('user:pass', 'realm');
  t.equal(u.md5Key.toString('hex'), '8493fbc53ba582fb4c044c456bdc40eb');
  t.same(u.sha256Key, sha256('user:realm:pass'));
});

t.test('static user entries', async (t) => {
  const colon = parseStaticUser('alice:pa:ss:word', 'example.org');
  t.equal(colon.name, 'alice', 'split on the first colon');
  t.same(colon.md5Key, md5('alice:example.org:pa:ss:word'));

  const hex = md5('bob:example.org:secret').toString('hex');
  const keyed = parseStaticUser(`bob:0x${hex}`, 'example.org');
  t.same(keyed.md5Key, md5('bob:example.org:secret'));
  t.equal(keyed.sha256Key, undefined, 'no SHA-256 key from an MD5 key');
  const upper = parseStaticUser(`bob:0x${hex.toUpperCase()}`, 'example.org');
  t.same(upper.md5Key, keyed.md5Key);

  const notKey = parseStaticUser('carol:0x1234', 'example.org');
  t.same(notKey.md5Key, md5('carol:example.org:0x1234'), 'a short 0x value is a password');
  const empty = parseStaticUser('dave:', 'example.org');
  t.same(empty.md5Key, md5('dave:example.org:'));

  t.throws(() => parseStaticUser('nocolon', 'r', 3), { name: 'TypeError', message: /#3/ });
  t.throws(() => parseStaticUser(':password', 'r'), TypeError);
  let message = '';
  try {
    parseStaticUser('hunter2-no-colon', 'r');
  } catch (e) {
    message = String(e);
  }
  t.notMatch(message, /hunter2/, 'the error never echoes the entry');
  t.match(message, /TypeError/);
});

t.test('StaticUsers: by name and by USERHASH', async (t) => {
  const users = new StaticUsers(['alice:one', 'bob:two', 'alice:three'], 'example.org');
  t.equal(users.size, 2);
  t.same(users.byName('alice')?.md5Key, md5('alice:example.org:three'), 'a later entry replaces');
  t.equal(users.byName('carol'), undefined);
  t.equal(users.byHash(userHash('bob', 'example.org'))?.name, 'bob');
  t.equal(users.byHash(userHash('bob', 'other.org')), undefined, 'hash includes the realm');
  t.equal(users.byHash(Buffer.alloc(31)), undefined);
  t.equal(users.byHash(Buffer.alloc(0)), undefined);
  t.same(userHash('bob', 'example.org'), sha256('bob:example.org'));
});

t.test('REST usernames', async (t) => {
  t.same(parseRestUsername('1700000000:alice'), { expirySec: 1700000000, userId: 'alice' });
  t.same(parseRestUsername('1700000000'), { expirySec: 1700000000, userId: '1700000000' });
  t.same(parseRestUsername('1700000000:a:b'), { expirySec: 1700000000, userId: 'a:b' });
  // A tag after '#': not part of the quota key.
  t.same(parseRestUsername('1700000000:alice#room-7'), {
    expirySec: 1700000000,
    userId: 'alice',
    tag: 'room-7',
  });
  t.same(parseRestUsername('1700000000:alice#'), { expirySec: 1700000000, userId: 'alice', tag: '' });
  t.same(parseRestUsername('1700000000:#x'), { expirySec: 1700000000, userId: '#x' });
  t.same(parseRestUsername('1700000000:'), { expirySec: 1700000000, userId: '1700000000:' });
  t.same(parseRestUsername('0:x'), { expirySec: 0, userId: 'x' });
  t.same(parseRestUsername('999999999999:x'), { expirySec: 999999999999, userId: 'x' });
  for (const bad of [
    '',
    ':alice',
    'alice',
    'alice:1700000000',
    '17e8:x',
    '-1:x',
    ' 1:x',
    '1 :x',
    '9999999999999:x',
  ]) {
    t.equal(parseRestUsername(bad), undefined, JSON.stringify(bad));
  }
});

t.test('REST password: base64(HMAC-SHA1(secret, username))', async (t) => {
  const expected = createHmac('sha1', 'north').update('1700000000:alice').digest('base64');
  t.equal(restPassword('north', '1700000000:alice'), expected);
  t.equal(expected.length, 28, 'padded base64 of 20 bytes');
  t.not(restPassword('south', '1700000000:alice'), expected);
});
