/**
 * Transactions without sockets: the RFC 8489 §6.2.1 schedule as a pure function, then the pending
 * requests with a recording `write` (short RTOs, real timers), and the Inbox.
 */
import t from 'tap';
import { Inbox, nextStep, RFC8489_RETRANSMIT, toResponse } from '../../src/client/index.js';
import { Transactions } from '../../src/client/transactions.js';
import { Class, Method } from '../../src/core/constants.js';
import { decodeStun } from '../../src/core/stun/decode.js';
import { StunWriter } from '../../src/core/stun/encode.js';

/** When each transmission goes out and when the transaction gives up, ms from the first one. */
function timeline(
  policy: Parameters<typeof nextStep>[0],
  reliable: boolean,
  timeoutMs = Number.POSITIVE_INFINITY,
): { sends: number[]; end: number } {
  const sends: number[] = [];
  let now = 0;
  for (let sent = 1; ; sent++) {
    sends.push(now);
    const step = nextStep(policy, reliable, sent, timeoutMs - now);
    now += step.waitMs;
    if (!step.retransmit) return { sends, end: now };
  }
}

t.test('RFC 8489 §6.2.1 schedule', async (t) => {
  // The RFC's own example: RTO 500 ms, Rc 7, Rm 16.
  t.same(timeline(RFC8489_RETRANSMIT, false), {
    sends: [0, 500, 1500, 3500, 7500, 15500, 31500],
    end: 39500,
  });
  t.same(timeline({ rtoMs: 250, transmissions: 6, lastWaitFactor: 8 }, false), {
    sends: [0, 250, 750, 1750, 3750, 7750],
    end: 9750,
  });
  t.same(timeline({ rtoMs: 500, transmissions: 1, lastWaitFactor: 1 }, false), { sends: [0], end: 500 });
  // The probe's: retransmit until the deadline, whatever the count.
  t.same(timeline({ rtoMs: 250, transmissions: Number.POSITIVE_INFINITY, lastWaitFactor: 1 }, false, 3000), {
    sends: [0, 250, 750, 1750],
    end: 3000,
  });
  // TCP/TLS (§6.2.2): one transmission, then the whole wait.
  t.same(timeline(RFC8489_RETRANSMIT, true, 39500), { sends: [0], end: 39500 });
  t.same(nextStep(RFC8489_RETRANSMIT, false, 1, 0), { retransmit: false, waitMs: 0 }, 'past the deadline');
});

const request = (): Buffer =>
  new StunWriter().start(Method.Binding, Class.Request, Buffer.alloc(12, 9)).finish();
const answerTo = (req: Buffer) => {
  const raw = new StunWriter().startResponse(Method.Binding, Class.Success, req).finish();
  const d = decodeStun(raw);
  if (!d.ok) throw new Error(d.reason);
  return toResponse(raw, d.view);
};

t.test('pending requests: retransmitted until answered, counted, failed on demand', async (t) => {
  const written: Buffer[] = [];
  const tx = new Transactions((b) => written.push(b), false);
  const req = request();
  const tid = req.toString('hex', 8, 20);
  const pending = tx.run(req, Method.Binding, { rtoMs: 10, transmissions: 5, lastWaitFactor: 2 });
  t.equal(tx.methodOf(tid), Method.Binding);
  await new Promise((r) => setTimeout(r, 25));
  tx.answer(tid, answerTo(req));
  const o = await pending;
  t.equal(o.kind, 'response');
  if (o.kind === 'response') {
    t.ok(o.transmissions >= 2, `${o.transmissions} transmissions before the answer`);
    t.ok(o.rttMs >= 20, 'RTT from the first transmission');
  }
  t.equal(tx.methodOf(tid), undefined, 'no longer pending');
  t.equal(tx.transmissions, written.length);
  t.equal(tx.retransmissions, written.length - 1);
  tx.answer(tid, answerTo(req)); // a late duplicate: ignored

  const silent = await tx.run(request(), Method.Binding, { rtoMs: 5, transmissions: 3, lastWaitFactor: 2 });
  t.same(silent, { kind: 'timeout', transmissions: 3 });

  const again = tx.run(req, Method.Binding, { rtoMs: 1000, transmissions: 1, lastWaitFactor: 1 });
  const dup = tx.run(req, Method.Binding, { rtoMs: 1000, transmissions: 1, lastWaitFactor: 1 });
  t.match(await again, { kind: 'error', code: 'EALREADY' }, 'the same transaction ID twice: the first ends');
  tx.reject(tid, 'EPROTO', 'not an answer');
  t.match(await dup, { kind: 'error', code: 'EPROTO' });

  const a = tx.run(request(), Method.Binding, { rtoMs: 1000, transmissions: 1, lastWaitFactor: 1 });
  tx.failAll('ECONNRESET', 'gone');
  t.same(await a, { kind: 'error', code: 'ECONNRESET', message: 'gone' });

  const stream = new Transactions(() => {}, true);
  t.same(await stream.run(request(), Method.Binding, { ...RFC8489_RETRANSMIT, timeoutMs: 20 }), {
    kind: 'timeout',
    transmissions: 1,
  });
});

t.test('Inbox: queued first, waiters in order, timeouts, capacity', async (t) => {
  const box = new Inbox<number>(2);
  box.push(1);
  box.push(2);
  box.push(3); // over capacity: dropped
  t.equal(box.size, 2);
  t.equal(await box.next(10), 1);
  t.equal(await box.next(10), 2);
  t.equal(await box.next(5), undefined, 'timeout');
  const first = box.next(1000);
  const second = box.next(1000);
  t.ok(box.waiting);
  box.push(4);
  box.push(5);
  t.same([await first, await second], [4, 5]);
  const late = box.collect(20);
  box.push(6);
  t.same(await late, [6]);
  box.push(7);
  box.clear();
  t.equal(box.size, 0);
  const ended = box.next(1000);
  box.close();
  t.equal(await ended, undefined, 'close ends the wait');
});
