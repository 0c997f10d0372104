/**
 * The long-term credential state: what a 401/438 teaches, the key it derives (MD5, or SHA-256 only
 * when asked for and offered), the signature it produces, and which responses verify.
 */
import t from 'tap';
import { describeChallengeFailure } from '../../src/client/auth.js';
import { LongTermAuth, restCredentials } from '../../src/client/index.js';
import { parseRestUsername, restPassword } from '../../src/core/auth/rest-secret.js';
import { AttrType, Class, Method } from '../../src/core/constants.js';
import { decodeStun, type StunView } from '../../src/core/stun/decode.js';
import { StunWriter } from '../../src/core/stun/encode.js';
import { longTermKey } from '../../src/core/stun/integrity.js';

const TID = Buffer.alloc(12, 1);
const ALGORITHMS = Buffer.from('0002000000010000', 'hex');

function challenge(code: number, attrs: { realm?: string; nonce?: string; algorithms?: Buffer }): StunView {
  const w = new StunWriter().start(Method.Allocate, Class.Error, TID).addErrorCode(code);
  if (attrs.realm !== undefined) w.addString(AttrType.Realm, attrs.realm);
  if (attrs.nonce !== undefined) w.addString(AttrType.Nonce, attrs.nonce);
  if (attrs.algorithms !== undefined) w.addBytes(AttrType.PasswordAlgorithms, attrs.algorithms);
  const d = decodeStun(w.finish());
  if (!d.ok) throw new Error(d.reason);
  return d.view;
}

function signedSuccess(key: Buffer, sha256: boolean): StunView {
  const w = new StunWriter().start(Method.Allocate, Class.Success, TID).addUint32(AttrType.Lifetime, 600);
  if (sha256) w.addMessageIntegritySha256(key);
  else w.addMessageIntegrity(key);
  const d = decodeStun(w.addFingerprint().finish());
  if (!d.ok) throw new Error(d.reason);
  return d.view;
}

t.test('a 401 teaches realm, nonce and algorithms; MD5 unless SHA-256 is asked for', async (t) => {
  const md5 = new LongTermAuth({ username: 'alice', password: 'wonderland' });
  t.notOk(md5.canSign);
  t.equal(md5.signature(), undefined, 'unsigned before the challenge');
  t.throws(() => md5.key(), /no realm yet/);
  t.equal(
    md5.learn(challenge(401, { realm: 'example.org', nonce: 'n1', algorithms: ALGORITHMS })),
    undefined,
  );
  t.ok(md5.canSign);
  t.notOk(md5.usesSha256, 'SHA-256 not asked for');
  t.same(md5.key(), longTermKey('alice', 'example.org', 'wonderland', 'md5'));
  t.match(md5.signature(), {
    username: 'alice',
    realm: 'example.org',
    nonce: Buffer.from('n1'),
    sha256: false,
  });

  const sha = new LongTermAuth({ username: 'alice', password: 'wonderland', sha256: true, userhash: true });
  sha.learn(challenge(401, { realm: 'example.org', nonce: 'n1', algorithms: ALGORITHMS }));
  t.ok(sha.usesSha256);
  t.same(sha.key(), longTermKey('alice', 'example.org', 'wonderland', 'sha256'));
  t.match(sha.signature(), { sha256: true, userhash: true, passwordAlgorithms: ALGORITHMS });

  const old = new LongTermAuth({ username: 'alice', password: 'wonderland', sha256: true });
  old.learn(challenge(401, { realm: 'example.org', nonce: 'n1' }));
  t.notOk(old.usesSha256, 'an RFC 5389 server offers no PASSWORD-ALGORITHMS: MD5');
});

t.test('a 438 refreshes the nonce and keeps the realm; failures change nothing', async (t) => {
  const a = new LongTermAuth({ username: 'alice', password: 'wonderland', realm: 'example.org' });
  t.same(a.learn(challenge(401, { nonce: 'n0' })), { kind: 'no-realm' });
  t.same(a.learn(challenge(401, { realm: 'example.org' })), { kind: 'no-nonce' });
  const other = a.learn(challenge(401, { realm: 'evil.example', nonce: 'n0' }));
  t.same(other, { kind: 'realm-mismatch', realm: 'evil.example', expected: 'example.org' });
  t.notOk(a.canSign, 'nothing learnt from the failures');
  a.learn(challenge(401, { realm: 'example.org', nonce: 'n1' }));
  t.equal(a.learn(challenge(438, { nonce: 'n2' })), undefined);
  t.same([a.realm, a.nonce], ['example.org', Buffer.from('n2')]);
  t.equal(describeChallengeFailure({ kind: 'no-nonce' }, 438), '438 without NONCE');
  t.equal(describeChallengeFailure({ kind: 'no-realm' }, 401), '401 without REALM');
  t.match(describeChallengeFailure(other!, 401), /"evil\.example" is not the expected "example\.org"/);
});

t.test('responses verify with the key: MESSAGE-INTEGRITY or -SHA256', async (t) => {
  const a = new LongTermAuth({ username: 'alice', password: 'wonderland', sha256: true });
  const none = signedSuccess(longTermKey('alice', 'example.org', 'wonderland'), false);
  t.equal(a.verify(none), undefined, 'nothing verifies before a realm is known');
  a.learn(challenge(401, { realm: 'example.org', nonce: 'n1' }));
  t.equal(a.verify(signedSuccess(a.key(), false)), 'sha1');
  t.equal(a.verify(signedSuccess(longTermKey('alice', 'example.org', 'other'), false)), undefined);
  a.learn(challenge(401, { realm: 'example.org', nonce: 'n1', algorithms: ALGORITHMS }));
  t.equal(a.verify(signedSuccess(a.key(), true)), 'sha256');
  t.equal(a.verify(signedSuccess(longTermKey('alice', 'example.org', 'other', 'sha256'), true)), undefined);
});

t.test('TURN REST credentials', async (t) => {
  const c = restCredentials('s3cret', 'ops', 600, 1_700_000_000);
  t.equal(c.username, '1700000600:ops');
  t.equal(c.password, restPassword('s3cret', c.username));
  t.same(parseRestUsername(c.username), { expirySec: 1_700_000_600, userId: 'ops' });
});
