/**
 * Per-source rate limit on answers to unauthenticated requests (401, 438, 400, 420): a burst of
 * twice the rate, then the rate; per source IP; authenticated answers are never limited.
 */
import t from 'tap';
import { Class, Method } from '../../../src/core/constants.js';
import { StunWriter } from '../../../src/core/stun/encode.js';
import {
  ALICE,
  freshTid,
  Harness,
  requestedTransport,
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
