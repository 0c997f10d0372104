/**
 * Per-source rate limit on answers to unauthenticated requests (401, 438, 400, 420): a burst of
 * twice the rate, then the rate; per source IP; authenticated answers are never limited.
 */
import t from 'tap';
import { Class, Method } from '../../../src/core/constants.js';
import { readErrorCode } from '../../../src/core/stun/attrs.js';
import { StunWriter } from '../../../src/core/stun/encode.js';
import { TURN_DISABLED_REASON } from '../../../src/core/turn/service.js';
import {
  ALICE,
  errorOf,
  freshTid,
  Harness,
  REALM,
  requestedTransport,
  staticUser,
  success,
  summarize,
} from '../../fixtures/helpers/turn-core-harness.js';

function unauthenticatedAllocate(): Buffer {
  const w = new StunWriter().start(Method.Allocate, Class.Request, freshTid());
  requestedTransport()(w);
  return w.finish();
}

/** How many of `n` unauthenticated Allocates from `address` (one port each) get an answer. */
function burst(h: Harness, address: string, n: number): number {
  let answered = 0;
  for (let i = 0; i < n; i++)
    if (h.handle(unauthenticatedAllocate(), address, 50000 + i) !== null) answered++;
  return answered;
}

t.test('rate 2/s: a burst gets 4 answers, then nothing; another IP is answered; tokens return', async (t) => {
  const h = new Harness({ rateLimit: 2 });
  t.equal(burst(h, '203.0.113.66', 10), 4, 'the burst: twice the rate');
  t.equal(h.stats.droppedRateLimited, 6);
  t.equal(h.limiter.limited, 6);
  t.equal(h.stats.errorResponses.get(401), 4, 'only sent answers are counted as 401s');
  t.equal(burst(h, '203.0.113.67', 10), 4, 'another source IP has its own budget');
  t.equal(burst(h, '203.0.113.66', 3), 0, 'many source ports of one IP share its budget');
  h.advanceMs(499);
  t.equal(burst(h, '203.0.113.66', 1), 0, '499 ms later: less than one token');
  h.advanceMs(1);
  t.equal(burst(h, '203.0.113.66', 3), 1, '500 ms: one token at 2/s');
  h.advanceMs(10_000);
  t.equal(burst(h, '203.0.113.66', 10), 4, 'after a long pause: the burst again, not more');
  t.equal(h.stats.droppedRateLimited, 6 + 6 + 3 + 1 + 2 + 6);
});

t.test(
  'the budget is shared by 401, 420 and 400; Binding and authenticated answers are not limited',
  async (t) => {
    const h = new Harness({ rateLimit: 2 });
    const address = '203.0.113.70';
    const c = h.client(ALICE, address, 40000);
    c.login(); // one token
    t.same(summarize(c.allocate(), ALICE), success(Method.Allocate), 'authenticated: no token');
    t.equal(burst(h, address, 10), 3, 'three tokens left');
    const unknownAttribute = new StunWriter()
      .start(Method.Binding, Class.Request, freshTid())
      .addBytes(0x0003, Buffer.alloc(4))
      .finish();
    t.equal(h.handle(unknownAttribute, address, 40001), null, '420 withheld');
    const unknownMethod = new StunWriter().start(0x0ff, Class.Request, freshTid()).finish();
    t.equal(h.handle(unknownMethod, address, 40002), null, '400 withheld');
    const binding = new StunWriter().start(Method.Binding, Class.Request, freshTid()).finish();
    t.not(h.handle(binding, address, 40003), null, 'Binding success is still answered');
    t.same(summarize(c.refresh(), ALICE), success(Method.Refresh), 'authenticated success still answered');
    t.same(summarize(c.allocate(), ALICE)?.code, 437, 'authenticated error still answered');
    h.advanceMs(500);
    const r = h.handle(unknownAttribute, address, 40001);
    t.not(r, null, 'with a new token, the 420 goes out');
  },
);

t.test('rate 0 disables the limit', async (t) => {
  const h = new Harness({ rateLimit: 0 });
  t.equal(burst(h, '203.0.113.80', 1000), 1000);
  t.equal(h.stats.droppedRateLimited, 0);
});

// ---------------------------------------------------------------------------------------------
// Verified sources: many real clients behind one IP are not throttled.

t.test('a source that authenticated is exempt: every challenge from it is answered', async (t) => {
  const h = new Harness({ rateLimit: 10, verifiedLifetimeMs: 600_000 });
  const egress = '198.51.100.20';
  t.equal(burst(h, egress, 100), 20, 'before any authentication: the burst of 20, nothing more');
  const c = h.client(ALICE, egress, 41000);
  h.advanceMs(1000); // tokens for the first challenge of this client
  c.login();
  t.same(summarize(c.allocate(), ALICE), success(Method.Allocate), 'one client authenticates');
  t.equal(burst(h, egress, 2000), 2000, 'now 2000 challenges to other clients behind it all go out');
  t.equal(burst(h, '198.51.100.21', 100), 20, 'another IP is still limited');
  t.equal(h.limiter.limitedChallenges, 80 + 80, 'refusals are counted as challenges');
  t.equal(h.limiter.limitedErrors, 0);
});

t.test(
  'verified for the lifetime after the last authenticated request, or while it holds an allocation',
  async (t) => {
    const h = new Harness({ rateLimit: 1, verifiedLifetimeMs: 60_000 });
    const ip = '198.51.100.30';
    const c = h.client(ALICE, ip, 41000);
    c.login();
    t.same(summarize(c.allocate(), ALICE), success(Method.Allocate));
    h.advance(120); // past the verified lifetime; the allocation (600 s) lives on
    t.ok(h.limiter.isVerified(ip, h.nowMs), 'a live allocation keeps the source verified');
    t.equal(burst(h, ip, 50), 50);
    t.same(
      summarize(c.refresh(0), ALICE),
      success(Method.Refresh),
      'the allocation ends (and verifies again)',
    );
    h.advance(59);
    t.ok(h.limiter.isVerified(ip, h.nowMs), '59 s after the last authenticated request: still verified');
    h.advance(1);
    h.limiter.prune(h.nowMs);
    t.notOk(h.limiter.isVerified(ip, h.nowMs), '60 s later, without an allocation: limited again');
    t.equal(h.limiter.verifiedCount, 0, 'pruned');
    t.equal(burst(h, ip, 10), 2, 'the normal burst');
  },
);

t.test('a request with bad integrity or an unknown user never verifies its source', async (t) => {
  const h = new Harness({ rateLimit: 10, verifiedLifetimeMs: 600_000 });
  const ip = '198.51.100.40';
  const liar = h.client(staticUser('eve', 'guess'), ip, 41000); // not a configured user
  liar.login();
  t.equal(errorOf(liar.allocate()), 401);
  const wrongPassword = h.client(staticUser('alice', 'not-wonderland'), ip, 41001);
  wrongPassword.login();
  t.equal(errorOf(wrongPassword.allocate()), 401, 'a wrong password');
  t.notOk(h.limiter.isVerified(ip, h.nowMs));
  t.equal(burst(h, ip, 100), 16, 'the four challenges above came out of its budget of 20');
  t.same(
    h.authFailures.map((f) => [f.reason, f.username, f.realm, f.address]),
    [
      ['unknown-user', 'eve', REALM, ip],
      ['bad-integrity', 'alice', REALM, ip],
    ],
    'both failures reported with user, realm and address; the first challenges are not failures',
  );
  t.equal(
    h.stats.authFailures.get('missing-credentials'),
    undefined,
    'challenges are not counted as failures',
  );
  t.ok(h.stats.authChallenges >= 2, 'challenges are counted on their own');
});

t.test('the verified set is bounded: the least recently authenticated source is evicted', async (t) => {
  const h = new Harness({ rateLimit: 1, verifiedLifetimeMs: 600_000, maxVerified: 3 });
  for (let i = 0; i < 4; i++) h.limiter.verify(`192.0.2.${i}`, h.nowMs);
  t.equal(h.limiter.verifiedCount, 3);
  t.equal(h.limiter.evictions, 1);
  t.notOk(h.limiter.isVerified('192.0.2.0', h.nowMs), 'the oldest was evicted: limited again');
  h.limiter.verify('192.0.2.1', h.nowMs); // touched: now the newest
  h.limiter.verify('192.0.2.9', h.nowMs);
  t.ok(h.limiter.isVerified('192.0.2.1', h.nowMs), 'a recently touched entry survives');
  t.notOk(h.limiter.isVerified('192.0.2.2', h.nowMs), 'the least recently touched one went');
  for (let i = 0; i < 100_000; i++)
    h.limiter.verify(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, h.nowMs);
  t.equal(h.limiter.verifiedCount, 3, 'never more than the cap');
  h.limiter.configure({ ratePerSec: 1, verifiedLifetimeMs: 600_000, maxVerified: 1 });
  t.equal(h.limiter.verifiedCount, 1, 'a lower cap on reload shrinks the set at once');
});

t.test('TURN disabled: a 401 that says so, with REALM and NONCE, limited like any challenge', async (t) => {
  const h = new Harness({ rateLimit: 1, turn: { enabled: false } });
  const c = h.client(ALICE, '198.51.100.50', 41000);
  const first = c.login();
  t.equal(errorOf(first), 401);
  t.equal(readErrorCode(first.view)?.reason, TURN_DISABLED_REASON);
  const second = c.allocate();
  t.equal(errorOf(second), 401, 'credentials change nothing');
  t.equal(readErrorCode(second!.view)?.reason, TURN_DISABLED_REASON);
  t.equal(h.stats.turnDisabledRefusals, 2);
  t.equal(h.authFailures.length, 0, 'not an authentication failure');
  t.equal(burst(h, '198.51.100.50', 5), 0, 'the two answers used the budget of 2');
  t.notOk(h.limiter.isVerified('198.51.100.50', h.nowMs));
});
