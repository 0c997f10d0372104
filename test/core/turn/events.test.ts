/**
 * The TURN service's events: what the operator log, metrics and (later) fleet mode subscribe to
 * instead of reading the core's tables.
 */
import t from 'tap';
import { Method } from '../../../src/core/constants.js';
import { ALICE, Harness, success, summarize } from '../../fixtures/helpers/turn-core-harness.js';

const PEER = '198.51.100.8';

t.test(
  'allocation, refresh, permission, channel and deletion events, in order, to every subscriber',
  async (t) => {
    const h = new Harness();
    const seen: string[] = [];
    const also: string[] = [];
    h.bus.subscribe({
      allocationCreated: (a) => seen.push(`created ${a.id}`),
      allocationRefreshed: (a, sec) => seen.push(`refreshed ${a.id} ${sec}`),
      permissionsSet: (a, ips) => seen.push(`permissions ${a.id} ${ips.join(',')}`),
      channelBound: (a, n, ip, port) => seen.push(`channel ${a.id} 0x${n.toString(16)} ${ip}:${port}`),
      allocationDeleted: (a, reason) => seen.push(`deleted ${a.id} ${reason}`),
    });
    const unsubscribe = h.bus.subscribe({ allocationCreated: (a) => also.push(`created ${a.id}`) });
    const c = h.client(ALICE, '192.0.2.40', 40000);
    t.same(summarize(c.allocate(), ALICE), success(Method.Allocate));
    unsubscribe();
    t.same(summarize(c.createPermission([PEER, PEER]), ALICE), success(Method.CreatePermission));
    t.same(summarize(c.channelBind(0x4001, PEER, 5000), ALICE), success(Method.ChannelBind));
    t.same(summarize(c.refresh(900), ALICE), success(Method.Refresh));
    t.same(summarize(c.refresh(0), ALICE), success(Method.Refresh));
    const id = h.events[0]?.allocation.id;
    t.same(seen, [
      `created ${id}`,
      `permissions ${id} ${PEER}`,
      `channel ${id} 0x4001 ${PEER}:5000`,
      `refreshed ${id} 900`,
      `deleted ${id} refreshed-to-zero`,
    ]);
    t.same(also, [`created ${id}`], 'an unsubscribed listener hears nothing more');
    t.equal(h.service.allocationCount, 0);
    t.same([...h.service.allocations()], [], 'the query API lists live allocations only');
  },
);

t.test('the query API: counters, live permissions and channels of each allocation', async (t) => {
  const h = new Harness();
  const c = h.client(ALICE, '192.0.2.41', 40000);
  c.allocate();
  c.createPermission([PEER, '198.51.100.9']);
  c.channelBind(0x4002, PEER, 6000);
  c.channelData(0x4002, Buffer.from('hello'));
  const [live] = [...h.service.allocations()];
  t.equal(live?.permissions, 2);
  t.equal(live?.channels, 1);
  t.equal(live?.counters.packetsToPeer, 1);
  t.equal(live?.counters.bytesToPeer, 5);
  t.equal(h.service.findAllocation(h.udp, '192.0.2.41', 40000), live?.allocation);
  h.advance(301);
  const [later] = [...h.service.allocations()];
  t.equal(later?.permissions, 0, 'expired permissions are not live');
  t.equal(later?.channels, 1, 'the channel lives 600 s');
});
