/**
 * Long-term authentication of TURN requests as the TURN service applies it (RFC 8656 §5, RFC 8489
 * §9.2): the 401 challenge, static and REST credentials, 441 for another user's allocation, 438.
 */
import t from 'tap';
import { AttrType, Class, Method, PasswordAlgorithm } from '../../../src/core/constants.js';
import { readBytes, readPasswordAlgorithms, readString } from '../../../src/core/stun/attrs.js';
import {
  ALICE,
  BOB,
  failure,
  Harness,
  MALLORY,
  REALM,
  restUser,
  SECRETS,
  staticUser,
  success,
  summarize,
} from '../../fixtures/helpers/turn-core-harness.js';

const CLIENT = '192.0.2.10';

t.test(
  'an unauthenticated Allocate gets 401 with REALM, NONCE and PASSWORD-ALGORITHMS, unsigned',
  async (t) => {
    const h = new Harness();
    const c = h.client(ALICE, CLIENT, 40000);
    const reply = c.login();
    t.same(summarize(reply, ALICE), failure(Method.Allocate, 401, false));
    t.equal(reply.view.integrityAt, -1, 'no MESSAGE-INTEGRITY: there is no key yet');
    t.equal(readString(reply.view, AttrType.Realm), REALM);
    const nonce = readBytes(reply.view, AttrType.Nonce)!;
    t.equal(nonce.length, 29, 'an RFC 8489 cookie nonce');
    t.equal(nonce.toString('latin1', 0, 9), 'obMatJos2');
    t.same(
      readPasswordAlgorithms(reply.view)?.map((a) => a.algorithm),
      [PasswordAlgorithm.SHA256, PasswordAlgorithm.MD5],
    );
    t.equal(h.service.table.size, 0, 'nothing allocated');
    t.equal(h.allocator.calls.length, 0, 'the allocator was not asked');
    t.equal(h.stats.authFailures.get('missing-credentials'), undefined, 'a challenge, not a failure');
    t.equal(h.stats.authChallenges, 1);
    t.equal(h.stats.errorResponses.get(401), 1);
  },
);

t.test('after the challenge, a static user with a password gets a success signed with its key', async (t) => {
  const h = new Harness();
  const c = h.client(ALICE, CLIENT, 40000);
  c.login();
  const reply = c.allocate();
  t.same(summarize(reply, ALICE), success(Method.Allocate));
  t.same(summarize(reply, MALLORY)?.signed, false, 'another key does not verify it');
  t.equal(c.allocation()?.username, 'alice');
  t.equal(c.allocation()?.userId, 'alice');
});

t.test('a static user configured by its MD5 key (name:0x<hex>) authenticates', async (t) => {
  const h = new Harness();
  const c = h.client(BOB, CLIENT, 40001);
  t.same(summarize(c.allocate(), BOB), success(Method.Allocate));
  const wrong = h.client(staticUser('bob', 'not-the-builder'), CLIENT, 40002);
  t.same(summarize(wrong.allocate(), BOB), failure(Method.Allocate, 401, false), 'a wrong password is 401');
  t.equal(h.stats.authFailures.get('bad-integrity'), 1);
});

t.test('TURN REST credentials verify under either of the two secrets', async (t) => {
  const h = new Harness();
  const expiry = h.nowSec + 3600;
  for (const [i, secret] of SECRETS.entries()) {
    const creds = restUser(secret, expiry, 'carol');
    const c = h.client(creds, CLIENT, 41000 + i);
    t.same(summarize(c.allocate(), creds), success(Method.Allocate), `issued under secret #${i}`);
    t.equal(c.allocation()?.username, `${expiry}:carol`);
    t.equal(c.allocation()?.userId, 'carol', 'the quota key is the userid');
  }
  const forged = restUser('another-secret', expiry, 'carol');
  const f = h.client(forged, CLIENT, 41009);
  t.same(summarize(f.allocate(), forged), failure(Method.Allocate, 401, false), 'unknown secret: 401');
  t.equal(h.service.table.size, 2);
});

t.test('an expired REST username is refused with 401 and a fresh challenge', async (t) => {
  const h = new Harness();
  const creds = restUser(SECRETS[0]!, h.nowSec - 1, 'carol');
  const c = h.client(creds, CLIENT, 40003);
  const reply = c.allocate();
  t.same(summarize(reply, creds), failure(Method.Allocate, 401, false));
  t.equal(readString(reply!.view, AttrType.Realm), REALM);
  t.ok(readBytes(reply!.view, AttrType.Nonce), 'a new NONCE');
  t.equal(h.stats.authFailures.get('expired-username'), 1);
  t.equal(h.service.table.size, 0);
  // Expiring exactly now is still accepted (the username says "valid until").
  const edge = restUser(SECRETS[0]!, h.nowSec, 'carol');
  t.same(summarize(h.client(edge, CLIENT, 40004).allocate(), edge), success(Method.Allocate));
});

t.test('441 when another user touches an existing allocation on its 5-tuple', async (t) => {
  const h = new Harness();
  const alice = h.client(ALICE, CLIENT, 40005);
  t.same(summarize(alice.allocate(), ALICE), success(Method.Allocate));
  const a = alice.allocation()!;
  const expiresAtSec = a.expiresAtSec;
  // Mallory, a valid user, on the very same 5-tuple (a NAT reusing the mapping, or a spoofer).
  const mallory = h.client(MALLORY, CLIENT, 40005);
  t.same(summarize(mallory.refresh(1200), MALLORY), failure(Method.Refresh, 441), 'Refresh');
  t.same(summarize(mallory.refresh(0), MALLORY), failure(Method.Refresh, 441), 'Refresh to zero');
  t.same(
    summarize(mallory.createPermission(['198.51.100.7']), MALLORY),
    failure(Method.CreatePermission, 441),
    'CreatePermission',
  );
  t.same(
    summarize(mallory.channelBind(0x4000, '198.51.100.7', 5000), MALLORY),
    failure(Method.ChannelBind, 441),
    'ChannelBind',
  );
  t.same(summarize(mallory.allocate(), MALLORY), failure(Method.Allocate, 441), 'a second Allocate');
  t.equal(alice.allocation(), a, 'the allocation is still there');
  t.equal(a.expiresAtSec, expiresAtSec, 'not refreshed');
  t.equal(h.fwd(a).permissions.size, 0, 'no permission installed');
  t.equal(h.fwd(a).channelsByNumber.size, 0, 'no channel bound');
  t.equal(h.allocator.calls.length, 1, 'no second relay');
  t.equal(h.stats.errorResponses.get(441), 5);
});

t.test('438 with a fresh challenge once the nonce is stale-nonce seconds old', async (t) => {
  const h = new Harness({ auth: { staleNonceSec: 30 } });
  const c = h.client(ALICE, CLIENT, 40006);
  c.login();
  const first = c.nonce!;
  t.same(summarize(c.allocate(), ALICE), success(Method.Allocate));
  h.advance(29);
  t.same(summarize(c.refresh(), ALICE), success(Method.Refresh), '29 s: still fresh');
  h.advance(1);
  const stale = c.refresh(undefined, undefined, { retryStale: false });
  t.same(summarize(stale, ALICE), failure(Method.Refresh, 438, false), '30 s: stale, unsigned');
  t.equal(stale!.view.cls, Class.Error);
  t.equal(readString(stale!.view, AttrType.Realm), REALM);
  const fresh = readBytes(stale!.view, AttrType.Nonce);
  t.ok(fresh !== undefined && !fresh.equals(first), 'a new NONCE');
  t.equal(h.stats.authFailures.get('stale-nonce'), 1);
  t.same(summarize(c.refresh(), ALICE), success(Method.Refresh), 'retried with the new nonce');
});
