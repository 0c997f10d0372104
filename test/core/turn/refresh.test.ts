/** Refresh (RFC 8656 §8.2): delete with LIFETIME 0, extend, 437, 443 for the address family. */
import t from 'tap';
import { AttrType, Family, Method } from '../../../src/core/constants.js';
import { readUint32 } from '../../../src/core/stun/attrs.js';
import {
  ALICE,
  failure,
  Harness,
  RELAY_V6,
  requestedTransport,
  success,
  summarize,
} from '../../fixtures/helpers/turn-core-harness.js';

const CLIENT = '192.0.2.20';

t.test(
  'LIFETIME 0 deletes at once; its retransmission gets the same success; a new Refresh 437',
  async (t) => {
    const h = new Harness();
    const c = h.client(ALICE, CLIENT, 40000);
    c.allocate();
    const relay = c.relay();
    const a = c.allocation()!;
    const request = c.build(Method.Refresh, (w) => w.addUint32(AttrType.Lifetime, 0));
    const reply = c.exchange(request);
    t.same(summarize(reply, ALICE), success(Method.Refresh));
    t.equal(readUint32(reply!.view, AttrType.Lifetime), 0, 'LIFETIME 0 in the answer');
    t.equal(h.service.table.size, 0, 'the table is empty');
    t.equal(relay.closeCount, 1, 'the relay is closed');
    t.equal(a.deleted, true);
    t.same(
      h.events.filter((e) => e.kind === 'deleted').map((e) => e.reason),
      ['refreshed-to-zero'],
    );
    t.equal(h.stats.allocationsDeleted.get('refreshed-to-zero'), 1);
    h.advance(3);
    const again = c.exchange(request);
    t.ok(again?.buf.equals(reply!.buf), 'the retransmission is answered with the same success, not 437');
    t.same(summarize(c.refresh(0), ALICE), failure(Method.Refresh, 437), 'a new transaction: 437');
    t.same(summarize(c.refresh(), ALICE), failure(Method.Refresh, 437));
    t.equal(relay.closeCount, 1, 'closed once');
  },
);

t.test(
  'Refresh extends the expiry; without LIFETIME it is the default, and the maximum caps it',
  async (t) => {
    const h = new Harness();
    const c = h.client(ALICE, CLIENT, 40001);
    c.allocate();
    const a = c.allocation()!;
    h.advance(500);
    const reply = c.refresh();
    t.same(summarize(reply, ALICE), success(Method.Refresh));
    t.equal(readUint32(reply!.view, AttrType.Lifetime), 600);
    t.equal(a.expiresAtSec, h.nowSec + 600);
    h.advance(200);
    t.equal(c.allocation(), a, 'alive 700 s after creation');
    t.equal(readUint32(c.refresh(1800)!.view, AttrType.Lifetime), 1800, 'a longer lifetime is granted');
    t.equal(a.expiresAtSec, h.nowSec + 1800);
    t.equal(readUint32(c.refresh(99999)!.view, AttrType.Lifetime), 3600, 'capped');
    t.equal(readUint32(c.refresh(30)!.view, AttrType.Lifetime), 600, 'raised to the default');
    h.advance(599);
    t.equal(c.allocation(), a, 'alive 1 s before the new expiry');
    h.advance(1);
    t.equal(c.allocation(), undefined, 'expired at the new expiry');
  },
);

t.test('437 for a Refresh without an allocation', async (t) => {
  const h = new Harness();
  const c = h.client(ALICE, CLIENT, 40002);
  t.same(summarize(c.refresh(600), ALICE), failure(Method.Refresh, 437));
  t.equal(h.stats.errorResponses.get(437), 1);
});

t.test('443 for REQUESTED-ADDRESS-FAMILY of a family the allocation does not have', async (t) => {
  const h = new Harness({ allocator: { v6: RELAY_V6 } });
  const c = h.client(ALICE, CLIENT, 40003);
  c.allocate();
  const a = c.allocation()!;
  const expiresAtSec = a.expiresAtSec;
  h.advance(10);
  const v6 = c.refresh(1200, (w) => w.addLeadingByte(AttrType.RequestedAddressFamily, Family.IPv6));
  t.same(summarize(v6, ALICE), failure(Method.Refresh, 443), 'IPv6 on an IPv4 allocation');
  const bogus = c.refresh(1200, (w) => w.addLeadingByte(AttrType.RequestedAddressFamily, 0x07));
  t.same(summarize(bogus, ALICE), failure(Method.Refresh, 443), 'an unknown family');
  t.equal(a.expiresAtSec, expiresAtSec, 'not refreshed');
  const v4 = c.refresh(1200, (w) => w.addLeadingByte(AttrType.RequestedAddressFamily, Family.IPv4));
  t.same(summarize(v4, ALICE), success(Method.Refresh), 'the matching family');
  t.equal(a.expiresAtSec, h.nowSec + 1200);

  const d = h.client(ALICE, CLIENT, 40004);
  d.allocate(requestedTransport((w) => w.addLeadingByte(AttrType.AdditionalAddressFamily, Family.IPv6)));
  for (const family of [Family.IPv4, Family.IPv6]) {
    const reply = d.refresh(900, (w) => w.addLeadingByte(AttrType.RequestedAddressFamily, family));
    t.same(summarize(reply, ALICE), success(Method.Refresh), `dual allocation, family ${family}`);
  }
});
