import t from 'tap';
import { parseUserDb, realmPattern, sameCredentials } from '../../../src/core/fleet/userdb.js';
import { longTermKey } from '../../../src/core/stun/integrity.js';

// coturn's turndb/schema.userdb.redis example: gorst/hero in north.gov has key 7da2270c…
const GORST_KEY = '7da2270ccfa49786e0115366d3a3d14d';

t.test('coturn layout: keys, passwords, secrets, realm options', async (t) => {
  const db = parseUserDb('north.gov', [
    ['turn/realm/north.gov/user/gorst/key', GORST_KEY],
    ['turn/realm/north.gov/user/ninefingers/password', 'youhavetoberealistic'],
    ['turn/realm/north.gov/user/a/b/key', 'bc807ee29df3c9ffa736523fb2c4e8ee'],
    ['turn/realm/north.gov/user/bad/key', 'not-hex'],
    ['turn/realm/north.gov/secret/2', 'second'],
    ['turn/realm/north.gov/secret/1', 'first'],
    ['turn/realm/north.gov/secret/3', null],
    ['turn/realm/north.gov/user-quota', '10'],
    ['turn/realm/north.gov/total-quota', '12000'],
    ['turn/realm/north.gov/max-bps', '500000'],
    ['turn/realm/north.gov/origin', 'x'],
    ['turn/realm/crinna.org/user/whirrun/password', 'sword'],
  ]);
  t.same(db.users.get('gorst')?.md5Key.toString('hex'), GORST_KEY);
  t.equal(db.users.get('gorst')?.sha256Key, undefined, 'a key gives MD5 only');
  t.same(
    db.users.get('gorst')?.md5Key,
    longTermKey('gorst', 'north.gov', 'hero', 'md5'),
    'the key is the long-term key',
  );
  t.same(
    db.users.get('ninefingers')?.sha256Key,
    longTermKey('ninefingers', 'north.gov', 'youhavetoberealistic', 'sha256'),
    'a password gives both',
  );
  t.ok(db.users.has('a/b'), 'a name with a slash');
  t.notOk(db.users.has('bad'));
  t.notOk(db.users.has('whirrun'), 'other realms are not read');
  t.same(db.secrets, ['first', 'second'], 'secrets in key order, vanished keys ignored');
  t.match(db, { userQuota: 10, totalQuota: 12000, maxBps: 500000, skipped: 2 });
});

t.test('comparison and pattern', async (t) => {
  const a = parseUserDb('r', [['turn/realm/r/user/u/password', 'p']]);
  t.ok(sameCredentials(a, parseUserDb('r', [['turn/realm/r/user/u/password', 'p']])));
  t.notOk(sameCredentials(a, parseUserDb('r', [['turn/realm/r/user/u/password', 'q']])));
  t.notOk(
    sameCredentials(
      a,
      parseUserDb('r', [['turn/realm/r/user/u/key', longTermKey('u', 'r', 'p', 'md5').toString('hex')]]),
    ),
    'the SHA-256 key is gone',
  );
  t.notOk(
    sameCredentials(
      a,
      parseUserDb('r', [
        ['turn/realm/r/user/u/password', 'p'],
        ['turn/realm/r/secret/1', 's'],
      ]),
    ),
  );
  t.equal(realmPattern('ex*ample[1]'), 'turn/realm/ex\\*ample\\[1\\]/*');
});
