/**
 * The fleet seam of Allocate (`AllocationAdmission`): a redirect answers 300 with ALTERNATE-SERVER;
 * admission runs while the allocation is pending (retransmissions dropped, other clients served),
 * its verdict decides (486, 508, or the relay bind); an admitted allocation that is never created
 * is handed back; a total quota from the seam replaces the configured one.
 */
import t from 'tap';
import { AttrType, Family, Method } from '../../../src/core/constants.js';
import { readAddress } from '../../../src/core/stun/attrs.js';
import type {
  AdmissionVerdict,
  AllocationAdmission,
  AlternateAddress,
} from '../../../src/core/turn/admission.js';
import type { Allocation } from '../../../src/core/turn/allocation.js';
import {
  ALICE,
  BOB,
  decode,
  errorOf,
  freshTid,
  Harness,
  type Reply,
  requestedTransport,
} from '../../fixtures/helpers/turn-core-harness.js';

/** An admission whose answers the test gives by hand. */
class ScriptedAdmission implements AllocationAdmission {
  alternate: AlternateAddress | undefined = undefined;
  redirectedWhileDraining: boolean[] = [];
  total: number | undefined = undefined;
  readonly pending: Array<{ a: Allocation; done: (v: AdmissionVerdict) => void }> = [];
  readonly abandoned: Allocation[] = [];

  families: number[] = [];

  redirect(draining: boolean, family: 4 | 6): AlternateAddress | undefined {
    this.redirectedWhileDraining.push(draining);
    this.families.push(family);
    return this.alternate;
  }

  totalQuota(): number | undefined {
    return this.total;
  }

  admit(a: Allocation, done: (verdict: AdmissionVerdict) => void): void {
    this.pending.push({ a, done });
  }

  abandon(a: Allocation): void {
    this.abandoned.push(a);
  }

  answer(verdict: AdmissionVerdict): void {
    const p = this.pending.shift();
    if (p === undefined) throw new Error('no admission pending');
    p.done(verdict);
  }
}

t.test('redirect: 300 with ALTERNATE-SERVER, before any quota', async (t) => {
  const admission = new ScriptedAdmission();
  admission.alternate = { address: '192.0.2.99', port: 3479 };
  const h = new Harness({ admission, turn: { userQuota: 1 } });
  const reply = h.client(ALICE, '192.0.2.1', 4000).allocate();
  t.equal(errorOf(reply), 300);
  t.same(readAddress(reply!.view, AttrType.AlternateServer), {
    family: Family.IPv4,
    address: '192.0.2.99',
    port: 3479,
  });
  t.same(admission.redirectedWhileDraining, [false]);
  h.service.setDraining(true);
  t.equal(errorOf(h.client(BOB, '192.0.2.2', 4000).allocate()), 300, 'draining asks the seam too');
  t.same(admission.redirectedWhileDraining, [false, true]);
  t.same(admission.families, [4, 4], "the client's address family");
  t.equal(admission.pending.length, 0, 'a redirected Allocate is never admitted');
});

t.test('admission in the pending phase', async (t) => {
  const admission = new ScriptedAdmission();
  const h = new Harness({ admission });
  const alice = h.client(ALICE, '192.0.2.1', 4000);
  alice.login();
  const tid = freshTid();
  const request = alice.build(Method.Allocate, requestedTransport(), { tid });
  t.equal(alice.exchange(request), null, 'no answer while admission runs');
  t.equal(admission.pending.length, 1);
  t.ok(admission.pending[0]!.a.pending, 'the allocation is pending');
  t.equal(alice.exchange(request), null, 'a retransmission is dropped');
  t.equal(admission.pending.length, 1, 'and not admitted twice');
  t.equal(h.allocator.calls.length, 0, 'no relay bound yet');
  // Another client is served meanwhile (its own admission pending too).
  h.client(BOB, '192.0.2.2', 4000).allocate();
  t.equal(admission.pending.length, 2);
  admission.answer(0);
  t.equal(h.allocator.calls.length, 1, 'admitted: the relay is bound');
  t.equal(errorOf(alice.exchange(request)), undefined, 'the answer is a success (from the cache)');
  t.equal(h.events.filter((e) => e.kind === 'created').length, 1);
  admission.answer(486);
  const bobAnswer = h.udp.to('192.0.2.2', 4000).at(-1);
  t.equal(errorOf(bobAnswer === undefined ? null : decode(bobAnswer.buf)), 486, 'bob gets 486');
  t.equal(h.service.allocationCount, 1, "bob's refused allocation is gone");
});

t.test('verdicts and hand-backs', async (t) => {
  const admission = new ScriptedAdmission();
  const h = new Harness({ admission });
  /** An Allocate from 192.0.2.1:`port` (after its 401 round), left pending in admission. */
  const send = (port: number): void => void h.client(ALICE, '192.0.2.1', port).allocate();
  send(4001);
  admission.answer(508);
  t.equal(errorOf(lastTo(h, 4001)), 508, '508 verdict');

  // Admitted, but the bind fails: handed back.
  h.allocator.failing = true;
  send(4002);
  admission.answer(0);
  t.equal(errorOf(lastTo(h, 4002)), 508, 'the bind failed');
  t.equal(admission.abandoned.length, 1, 'the admitted allocation is handed back');
  h.allocator.failing = false;

  // Admitted after the client went (deleted while pending): handed back, never bound.
  send(4003);
  h.service.closeAll('shutdown');
  admission.answer(0);
  t.equal(admission.abandoned.length, 2);
  t.equal(h.allocator.calls.length, 1, 'only the failing bind was tried');

  // The seam's total quota replaces the configured one.
  admission.total = 1;
  send(4004);
  admission.answer(0);
  t.equal(errorOf(h.client(ALICE, '192.0.2.1', 4005).allocate()), 508, 'the seam total quota (1) applies');
});

/** The last message the service sent to 192.0.2.1:`port`. */
function lastTo(h: Harness, port: number): Reply | null {
  const last = h.udp.to('192.0.2.1', port).at(-1);
  return last === undefined ? null : decode(last.buf);
}
