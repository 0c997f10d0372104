import { createHash, createHmac } from 'node:crypto';
import t from 'tap';
import {
  AUTH_FAILURES,
  Authenticator,
  type AuthOptions,
  type AuthResult,
  OFFERED_PASSWORD_ALGORITHMS,
} from '../../../src/core/auth/authenticate.js';
import { userHash } from '../../../src/core/auth/credentials.js';
import { AttrType, Class, ErrorCode, Method, PasswordAlgorithm } from '../../../src/core/constants.js';
import { readPasswordAlgorithms, readString } from '../../../src/core/stun/attrs.js';
import { StunWriter } from '../../../src/core/stun/encode.js';
import {
  hmacWithLength,
  longTermKey,
  verifyMessageIntegrity,
  verifyMessageIntegritySha256,
} from '../../../src/core/stun/integrity.js';
import {
  buildRequest,
  type RequestSpec,
  SERVER_ALGORITHMS,
  TID,
  view,
} from '../../fixtures/helpers/auth-requests.js';

const REALM = 'example.org';
const NOW = 1_700_000_000;
const IP = '198.51.100.7';
const PORT = 50123;
const SECRETS = ['north-secret', 'south-secret'];

/** tap's Test type (the last overload of `t.test` takes only the callback). */
type TapTest = Parameters<Parameters<typeof t.test>[0]>[0];

const md5Hex = (s: string) => createHash('md5').update(s).digest('hex');

const OPTIONS: AuthOptions = {
  realm: REALM,
  users: [
    'alice:wonderland',
    `bob:0x${md5Hex(`bob:${REALM}:builder`)}`,
    'carol:c:o:l',
    // A static user whose name also parses as a REST username: the static entry wins.
    '1900000000:static-pw',
  ],
  useAuthSecret: true,
  staticAuthSecrets: SECRETS,
  staleNonceSec: 600,
  nonceSecret: Buffer.alloc(32, 0x5a),
};

function authenticator(overrides: Partial<AuthOptions> = {}): Authenticator {
  return new Authenticator({ ...OPTIONS, ...overrides });
}

interface Challenge {
  realm: string | undefined;
  nonce: string;
  algorithms: Buffer | undefined;
  bytes: Buffer;
}

/** The 401 the caller would send: ERROR-CODE then the challenge attributes. */
function challenge(auth: Authenticator, offer: boolean, ip = IP, port = PORT, now = NOW): Challenge {
  const w = new StunWriter().start(Method.Allocate, Class.Error, TID).addErrorCode(ErrorCode.Unauthorized);
  auth.addChallenge(w, ip, port, now, offer);
  const bytes = w.finish();
  const v = view(bytes);
  const i = v.find(AttrType.PasswordAlgorithms);
  return {
    realm: readString(v, AttrType.Realm),
    nonce: readString(v, AttrType.Nonce) ?? '',
    algorithms: i < 0 ? undefined : Buffer.from(v.value(i)),
    bytes,
  };
}

function run(auth: Authenticator, spec: RequestSpec, ip = IP, port = PORT, now = NOW): AuthResult {
  return auth.authenticate(view(buildRequest(spec)), ip, port, now);
}

const md5Key = (user: string, pass: string) => longTermKey(user, REALM, pass, 'md5');
const sha256Key = (user: string, pass: string) => longTermKey(user, REALM, pass, 'sha256');
const restPass = (secret: string, user: string) => createHmac('sha1', secret).update(user).digest('base64');

/** An RFC 5389 client (browsers today): USERNAME, REALM, NONCE, MESSAGE-INTEGRITY with the MD5 key. */
function legacy(user: string, pass: string, nonce: string): RequestSpec {
  return { username: user, realm: REALM, nonce, mi: md5Key(user, pass) };
}

/** An RFC 8489 client answering a cookie nonce with SHA-256 (optionally anonymous). */
function modern(user: string, pass: string, nonce: string, anonymous = false): RequestSpec {
  return {
    ...(anonymous ? { userhash: userHash(user, REALM) } : { username: user }),
    realm: REALM,
    nonce,
    algorithms: SERVER_ALGORITHMS,
    algorithm: PasswordAlgorithm.SHA256,
    miSha256: sha256Key(user, pass),
  };
}

function failed(t: TapTest, r: AuthResult, code: number, reason: string, msg?: string): void {
  t.same(r, { ok: false, code, reason }, msg ?? `${code} ${reason}`);
}

t.test('challenge contents', async (t) => {
  const auth = authenticator();
  const offered = challenge(auth, true);
  t.equal(offered.realm, REALM);
  t.match(offered.nonce, /^obMatJos2wAAA[A-Za-z0-9_-]{16}$/, 'cookie with both feature bits + 16-char body');
  t.equal(offered.nonce.length, 29, 'nonce ≤ 32 characters');
  t.same(offered.algorithms, Buffer.from('0002000000010000', 'hex'), 'SHA-256 then MD5, no parameters');
  const pa = readPasswordAlgorithms(view(offered.bytes));
  t.same(
    pa?.map((e) => e.algorithm),
    [...OFFERED_PASSWORD_ALGORITHMS],
  );
  t.ok(offered.bytes.length <= 20 + 8 + 4 + 12 + 4 + 32 + 12, `401 is small (${offered.bytes.length} bytes)`);

  const plain = challenge(auth, false);
  t.equal(plain.realm, REALM);
  t.match(plain.nonce, /^[A-Za-z0-9_-]{16}$/, 'no cookie when algorithms are not offered');
  t.equal(plain.algorithms, undefined, 'PASSWORD-ALGORITHMS only when offered');

  t.not(challenge(auth, true, IP, PORT + 1).nonce, offered.nonce, 'nonce depends on the client port');
  t.not(challenge(auth, true, IP, PORT, NOW + 1).nonce, offered.nonce, 'and on the time');
});

t.test('no credentials → 401 missing-credentials', async (t) => {
  const auth = authenticator();
  failed(t, run(auth, {}), 401, 'missing-credentials');
  const nonce = challenge(auth, false).nonce;
  failed(
    t,
    run(auth, { username: 'alice', realm: REALM, nonce }),
    401,
    'missing-credentials',
    'USERNAME etc. without any integrity is still a first request',
  );
});

t.test('integrity but missing attributes → 400 bad-request', async (t) => {
  const auth = authenticator();
  const nonce = challenge(auth, true).nonce;
  const key = md5Key('alice', 'wonderland');
  failed(t, run(auth, { realm: REALM, nonce, mi: key }), 400, 'bad-request', 'no USERNAME/USERHASH');
  failed(t, run(auth, { username: 'alice', nonce, mi: key }), 400, 'bad-request', 'no REALM');
  failed(t, run(auth, { username: 'alice', realm: REALM, mi: key }), 400, 'bad-request', 'no NONCE');
  failed(
    t,
    run(auth, { username: 'alice', userhash: userHash('alice', REALM), realm: REALM, nonce, mi: key }),
    400,
    'bad-request',
    'both USERNAME and USERHASH',
  );
  failed(
    t,
    run(auth, { username: 'x'.repeat(513), realm: REALM, nonce, mi: key }),
    400,
    'bad-request',
    'USERNAME too long',
  );
  // Invalid UTF-8 in USERNAME, correctly signed.
  const resigned = new StunWriter().start(Method.Allocate, Class.Request, TID);
  resigned.addBytes(AttrType.Username, Buffer.from([0x61, 0x6c, 0xff, 0x63, 0x65]));
  resigned.addString(AttrType.Realm, REALM).addString(AttrType.Nonce, nonce);
  resigned.addMessageIntegrity(key);
  failed(
    t,
    auth.authenticate(view(resigned.finish()), IP, PORT, NOW),
    400,
    'bad-request',
    'USERNAME not UTF-8',
  );
});

t.test('static users, RFC 5389 style (MD5, MESSAGE-INTEGRITY)', async (t) => {
  const auth = authenticator();
  const nonce = challenge(auth, false).nonce;
  t.same(run(auth, legacy('alice', 'wonderland', nonce)), {
    ok: true,
    username: 'alice',
    userId: 'alice',
    key: md5Key('alice', 'wonderland'),
    integrity: 'sha1',
  });
  const bob = run(auth, legacy('bob', 'builder', nonce));
  t.same(
    bob,
    { ok: true, username: 'bob', userId: 'bob', key: md5Key('bob', 'builder'), integrity: 'sha1' },
    '0x key',
  );
  t.match(
    run(auth, legacy('carol', 'c:o:l', nonce)),
    { ok: true, username: 'carol' },
    'password with colons',
  );
  failed(t, run(auth, legacy('alice', 'looking-glass', nonce)), 401, 'bad-integrity', 'wrong password');
  failed(t, run(auth, legacy('bob', 'wrong', nonce)), 401, 'bad-integrity', 'wrong password, 0x user');
  failed(t, run(auth, legacy('mallory', 'x', nonce)), 401, 'unknown-user');
});

t.test('TURN REST credentials', async (t) => {
  const auth = authenticator();
  const nonce = challenge(auth, false).nonce;
  const username = `${NOW + 3600}:user-42`;
  for (const secret of SECRETS) {
    t.same(
      run(auth, legacy(username, restPass(secret, username), nonce)),
      {
        ok: true,
        username,
        userId: 'user-42',
        key: md5Key(username, restPass(secret, username)),
        integrity: 'sha1',
      },
      `secret ${secret}`,
    );
  }
  const bare = `${NOW + 10}`;
  t.match(
    run(auth, legacy(bare, restPass('south-secret', bare), nonce)),
    { ok: true, userId: bare },
    'bare expiry',
  );
  const atExpiry = `${NOW}:edge`;
  t.match(
    run(auth, legacy(atExpiry, restPass('north-secret', atExpiry), nonce)),
    { ok: true },
    'valid at expiry',
  );

  const expired = `${NOW - 1}:user-42`;
  failed(t, run(auth, legacy(expired, restPass('north-secret', expired), nonce)), 401, 'expired-username');
  failed(
    t,
    run(auth, legacy(username, restPass('west-secret', username), nonce)),
    401,
    'bad-integrity',
    'other secret',
  );
  failed(t, run(auth, legacy(username, 'guess', nonce)), 401, 'bad-integrity');

  const off = authenticator({ useAuthSecret: false });
  const offNonce = challenge(off, false).nonce;
  failed(
    t,
    run(off, legacy(username, restPass('north-secret', username), offNonce)),
    401,
    'unknown-user',
    'REST off',
  );
  const none = authenticator({ staticAuthSecrets: [] });
  const noneNonce = challenge(none, false).nonce;
  failed(
    t,
    run(none, legacy(username, restPass('north-secret', username), noneNonce)),
    401,
    'bad-integrity',
    'no secrets',
  );

  // Static users and REST at the same time; a static user with a REST-looking name wins.
  t.match(run(auth, legacy('alice', 'wonderland', nonce)), { ok: true, userId: 'alice' });
  t.match(run(auth, legacy('1900000000', 'static-pw', nonce)), { ok: true, userId: '1900000000' });
  failed(
    t,
    run(auth, legacy('1900000000', restPass('north-secret', '1900000000'), nonce)),
    401,
    'bad-integrity',
  );

  // REST with SHA-256 negotiated.
  const sha = challenge(auth, true).nonce;
  const r = run(auth, modern(username, restPass('south-secret', username), sha));
  t.same(r, {
    ok: true,
    username,
    userId: 'user-42',
    key: sha256Key(username, restPass('south-secret', username)),
    integrity: 'sha256',
  });
  failed(
    t,
    run(auth, modern(username, restPass('south-secret', username), sha, true)),
    401,
    'unknown-user',
    'no USERHASH for REST',
  );
});

t.test('REST user ids revoked by the operator → 401 revoked', async (t) => {
  const calls: Array<[string, number]> = [];
  const revoked = new Map([['user-42', NOW + 100]]);
  const isRevoked = (userId: string, nowSec: number): boolean => {
    calls.push([userId, nowSec]);
    return (revoked.get(userId) ?? 0) > nowSec;
  };
  const auth = authenticator({ isRevoked });
  const nonce = challenge(auth, false).nonce;
  const username = `${NOW + 3600}:user-42`;
  failed(t, run(auth, legacy(username, restPass('north-secret', username), nonce)), 401, 'revoked');
  t.same(calls, [['user-42', NOW]], 'asked with the REST user id and the time');
  t.match(
    run(auth, legacy(username, restPass('north-secret', username), nonce), IP, PORT, NOW + 100),
    { ok: true, userId: 'user-42' },
    'usable again once the revocation ends',
  );
  const other = `${NOW + 3600}:user-43`;
  t.match(run(auth, legacy(other, restPass('south-secret', other), nonce)), { ok: true }, 'other ids');

  calls.length = 0;
  failed(t, run(auth, legacy(username, 'guess', nonce)), 401, 'bad-integrity', 'integrity first');
  const expired = `${NOW - 1}:user-42`;
  failed(t, run(auth, legacy(expired, restPass('north-secret', expired), nonce)), 401, 'expired-username');
  t.match(run(auth, legacy('alice', 'wonderland', nonce)), { ok: true }, 'static users are not checked');
  t.same(calls, [], 'not consulted for refused or static credentials');

  revoked.set('alice', NOW + 100);
  t.match(
    run(auth, legacy('alice', 'wonderland', nonce)),
    { ok: true },
    'static user named like a revoked id',
  );

  // withRevocation: the same configuration, nonces still valid, the new check in force.
  const plain = authenticator();
  const plainNonce = challenge(plain, false).nonce;
  t.match(run(plain, legacy(username, restPass('north-secret', username), plainNonce)), { ok: true });
  const revocable = plain.withRevocation(isRevoked);
  failed(
    t,
    run(revocable, legacy(username, restPass('north-secret', username), plainNonce)),
    401,
    'revoked',
    'withRevocation keeps the nonce key and adds the check',
  );
  t.match(run(revocable, legacy('alice', 'wonderland', plainNonce)), { ok: true }, 'users kept');
  t.match(
    run(plain, legacy(username, restPass('north-secret', username), plainNonce)),
    { ok: true },
    'original unchanged',
  );
});

t.test('realm and nonce checks', async (t) => {
  const auth = authenticator();
  const nonce = challenge(auth, true).nonce;
  failed(t, run(auth, { ...legacy('alice', 'wonderland', nonce), realm: 'example.com' }), 401, 'wrong-realm');

  // Tampered nonce, correctly signed by the client: the nonce's own MAC fails.
  const flipped = nonce.slice(0, 20) + (nonce[20] === 'A' ? 'B' : 'A') + nonce.slice(21);
  failed(t, run(auth, legacy('alice', 'wonderland', flipped)), 438, 'bad-nonce', 'tampered');
  failed(t, run(auth, legacy('alice', 'wonderland', 'made-up-nonce')), 438, 'bad-nonce', 'not ours');
  const foreign = challenge(authenticator({ nonceSecret: Buffer.alloc(32, 1) }), true).nonce;
  failed(t, run(auth, legacy('alice', 'wonderland', foreign)), 438, 'bad-nonce', 'another key');

  // Replayed from elsewhere.
  failed(
    t,
    run(auth, legacy('alice', 'wonderland', nonce), '198.51.100.8', PORT),
    438,
    'bad-nonce',
    'other IP',
  );
  failed(t, run(auth, legacy('alice', 'wonderland', nonce), IP, PORT + 1), 438, 'bad-nonce', 'other port');

  // Expiry.
  t.match(run(auth, legacy('alice', 'wonderland', nonce), IP, PORT, NOW + 599), { ok: true });
  failed(t, run(auth, legacy('alice', 'wonderland', nonce), IP, PORT, NOW + 600), 438, 'stale-nonce');
  const fresh = challenge(auth, true, IP, PORT, NOW + 600).nonce;
  t.match(
    run(auth, legacy('alice', 'wonderland', fresh), IP, PORT, NOW + 600),
    { ok: true },
    'fresh nonce after 438',
  );
  const shortLived = authenticator({ staleNonceSec: 30 });
  const n30 = challenge(shortLived, false).nonce;
  failed(t, run(shortLived, legacy('alice', 'wonderland', n30), IP, PORT, NOW + 30), 438, 'stale-nonce');
});

t.test('refusals before the user lookup do not depend on whether the user exists', async (t) => {
  const auth = authenticator();
  const nonce = challenge(auth, true).nonce;
  for (const [name, mutate] of [
    ['wrong realm', (s: RequestSpec): RequestSpec => ({ ...s, realm: 'x' })],
    ['bad nonce', (s: RequestSpec): RequestSpec => ({ ...s, nonce: 'x' })],
    ['bid-down', (s: RequestSpec): RequestSpec => ({ ...s, algorithms: [PasswordAlgorithm.MD5] })],
    ['missing realm', ({ realm: _, ...s }: RequestSpec): RequestSpec => s],
  ] as const) {
    const known = run(auth, mutate(modern('alice', 'wonderland', nonce)));
    const unknown = run(auth, mutate(modern('nobody', 'x', nonce)));
    t.equal(known, unknown, name);
  }
  const stale = [
    run(auth, modern('alice', 'wonderland', nonce), IP, PORT, NOW + 700),
    run(auth, modern('nobody', 'x', nonce), IP, PORT, NOW + 700),
  ];
  t.equal(stale[0], stale[1], 'stale');
  // Unknown user and wrong password share the code.
  t.equal(run(auth, modern('nobody', 'x', nonce)).ok, false);
  const a = run(auth, modern('nobody', 'x', nonce));
  const b = run(auth, modern('alice', 'x', nonce));
  t.equal(!a.ok && a.code, !b.ok && b.code);
});

t.test('RFC 8489 SHA-256, PASSWORD-ALGORITHM(S) and USERHASH', async (t) => {
  const auth = authenticator();
  const nonce = challenge(auth, true).nonce;
  const expected = {
    ok: true,
    username: 'alice',
    userId: 'alice',
    key: sha256Key('alice', 'wonderland'),
    integrity: 'sha256',
  };
  t.same(run(auth, modern('alice', 'wonderland', nonce, true)), expected, 'USERHASH + MI-SHA256');
  t.same(run(auth, modern('alice', 'wonderland', nonce)), expected, 'USERNAME + MI-SHA256');
  t.same(
    run(auth, { ...modern('alice', 'wonderland', nonce), mi: sha256Key('alice', 'wonderland') }),
    expected,
    'both MI and MI-SHA256 (the RFC 8656 example): SHA-256 one verified',
  );
  failed(t, run(auth, modern('alice', 'nope', nonce, true)), 401, 'bad-integrity');
  failed(t, run(auth, modern('nobody', 'x', nonce, true)), 401, 'unknown-user', 'unknown USERHASH');
  failed(
    t,
    run(auth, { ...modern('alice', 'wonderland', nonce, true), userhash: Buffer.alloc(16) }),
    401,
    'unknown-user',
    'short USERHASH',
  );

  // PASSWORD-ALGORITHM MD5 with MESSAGE-INTEGRITY-SHA256: MD5 key, SHA-256 HMAC.
  t.same(
    run(auth, {
      ...modern('alice', 'wonderland', nonce),
      algorithm: PasswordAlgorithm.MD5,
      miSha256: md5Key('alice', 'wonderland'),
    }),
    { ...expected, key: md5Key('alice', 'wonderland') },
  );
  // A SHA-256 algorithm with plain MESSAGE-INTEGRITY: SHA-256 key, SHA-1 HMAC, answered with MI.
  const { miSha256: _, ...noSha } = modern('alice', 'wonderland', nonce);
  t.same(run(auth, { ...noSha, mi: sha256Key('alice', 'wonderland') }), { ...expected, integrity: 'sha1' });

  // A 0x-key user has no SHA-256 key.
  failed(t, run(auth, modern('bob', 'builder', nonce)), 401, 'unsupported-algorithm');
  failed(
    t,
    run(auth, modern('bob', 'builder', nonce, true)),
    401,
    'unsupported-algorithm',
    'by USERHASH too',
  );
  t.match(
    run(auth, {
      ...modern('bob', 'builder', nonce, true),
      algorithm: PasswordAlgorithm.MD5,
      miSha256: md5Key('bob', 'builder'),
    }),
    { ok: true, username: 'bob', integrity: 'sha256' },
    'but MD5 works by USERHASH',
  );

  // USERHASH requires a nonce that advertised username anonymity.
  const plain = challenge(auth, false).nonce;
  failed(
    t,
    run(auth, {
      userhash: userHash('alice', REALM),
      realm: REALM,
      nonce: plain,
      mi: md5Key('alice', 'wonderland'),
    }),
    401,
    'unknown-user',
  );
});

t.test('truncated MESSAGE-INTEGRITY-SHA256 (RFC 8489 §14.6) is accepted', async (t) => {
  const auth = authenticator();
  const nonce = challenge(auth, true).nonce;
  const key = sha256Key('alice', 'wonderland');
  const w = new StunWriter().start(Method.Refresh, Class.Request, TID);
  w.addString(AttrType.Username, 'alice').addString(AttrType.Realm, REALM).addString(AttrType.Nonce, nonce);
  w.addPasswordAlgorithms(SERVER_ALGORITHMS).addPasswordAlgorithm(PasswordAlgorithm.SHA256);
  const partial = w.finish();
  const at = partial.length;
  const withRoom = Buffer.concat([partial, Buffer.alloc(20)]);
  const mac = hmacWithLength('sha256', key, withRoom, at, at + 20 - 20);
  withRoom.writeUInt16BE(AttrType.MessageIntegritySha256, at);
  withRoom.writeUInt16BE(16, at + 2);
  mac.copy(withRoom, at + 4, 0, 16);
  withRoom.writeUInt16BE(withRoom.length - 20, 2);
  t.match(auth.authenticate(view(withRoom), IP, PORT, NOW), { ok: true, integrity: 'sha256' });
});

t.test('bid-down protection (RFC 8489 §9.2.4) → 400', async (t) => {
  const auth = authenticator();
  const nonce = challenge(auth, true).nonce;
  const good = modern('alice', 'wonderland', nonce);
  const cases: Array<[string, RequestSpec]> = [
    ['MD5 only offered', { ...good, algorithms: [PasswordAlgorithm.MD5], algorithm: PasswordAlgorithm.MD5 }],
    ['order swapped', { ...good, algorithms: [PasswordAlgorithm.MD5, PasswordAlgorithm.SHA256] }],
    ['SHA-256 removed, MD5 chosen', { ...good, algorithms: [PasswordAlgorithm.MD5] }],
    ['an extra algorithm', { ...good, algorithms: [...SERVER_ALGORITHMS, 3] }],
    ['parameters added', { ...good, algorithms: Buffer.from('0002000400000000' + '00010000', 'hex') }],
    ['algorithm not offered', { ...good, algorithm: 3 }],
    ['algorithm with parameters', { ...good, algorithm: Buffer.from('0002000401020304', 'hex') }],
    ['algorithm truncated', { ...good, algorithm: Buffer.from('0002', 'hex') }],
    ['PASSWORD-ALGORITHM without PASSWORD-ALGORITHMS', { ...good, algorithms: undefined as never }],
    ['PASSWORD-ALGORITHMS without PASSWORD-ALGORITHM', { ...good, algorithm: undefined as never }],
  ];
  for (const [name, spec] of cases) {
    const clean = Object.fromEntries(Object.entries(spec).filter(([, v]) => v !== undefined)) as RequestSpec;
    failed(t, run(auth, clean), 400, 'bid-down', name);
  }
  // Negotiation attributes with a nonce that offered none.
  const plain = challenge(auth, false).nonce;
  failed(t, run(auth, modern('alice', 'wonderland', plain)), 400, 'bid-down', 'not offered at all');

  // An RFC 5389 client (neither attribute) after a cookie nonce: MD5 + MESSAGE-INTEGRITY, fine.
  t.same(run(auth, legacy('alice', 'wonderland', nonce)), {
    ok: true,
    username: 'alice',
    userId: 'alice',
    key: md5Key('alice', 'wonderland'),
    integrity: 'sha1',
  });
});

t.test('sign() adds the integrity the request used, verifiable with the key', async (t) => {
  const auth = authenticator();
  const nonce = challenge(auth, true).nonce;
  for (const [spec, integrity] of [
    [legacy('alice', 'wonderland', nonce), 'sha1'],
    [modern('alice', 'wonderland', nonce, true), 'sha256'],
  ] as const) {
    const r = run(auth, spec);
    if (!r.ok) {
      t.fail('not authenticated');
      continue;
    }
    t.equal(r.integrity, integrity);
    const w = new StunWriter().start(Method.Allocate, Class.Success, TID).addUint32(AttrType.Lifetime, 600);
    auth.sign(w, r);
    const resp = view(w.addFingerprint().finish());
    if (integrity === 'sha1') {
      t.ok(verifyMessageIntegrity(resp, md5Key('alice', 'wonderland')));
      t.equal(resp.integritySha256At, -1, 'only one integrity attribute');
    } else {
      t.ok(verifyMessageIntegritySha256(resp, sha256Key('alice', 'wonderland')));
      t.equal(resp.integrityAt, -1, 'only one integrity attribute');
    }
    t.notOk(resp.has(AttrType.Username) || resp.has(AttrType.Realm) || resp.has(AttrType.Nonce));
  }
});

t.test('refusals are shared frozen values', async (t) => {
  const auth = authenticator();
  const r = run(auth, {});
  t.equal(r, AUTH_FAILURES['missing-credentials']);
  t.ok(Object.isFrozen(r));
  for (const [reason, value] of Object.entries(AUTH_FAILURES)) t.equal(value.reason, reason);
});

t.test('constructor rejects bad configuration', async (t) => {
  t.throws(() => authenticator({ users: ['no-colon'] }), TypeError);
  t.throws(() => authenticator({ nonceSecret: Buffer.alloc(8) }), RangeError);
  t.throws(() => authenticator({ staleNonceSec: 0 }), RangeError);
  const secrets = ['north-secret'];
  const auth = authenticator({ staticAuthSecrets: secrets });
  secrets[0] = 'changed';
  const nonce = challenge(auth, false).nonce;
  const u = `${NOW + 60}:x`;
  t.match(run(auth, legacy(u, restPass('north-secret', u), nonce)), { ok: true }, 'secrets are copied');
});
