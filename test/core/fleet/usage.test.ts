import t from 'tap';
import { UsageBuffer, usageRecord } from '../../../src/core/fleet/usage.js';
import type { ClientEndpoint, RelayHandle } from '../../../src/core/transport.js';
import { Allocation } from '../../../src/core/turn/allocation.js';

t.test('a usage record', async (t) => {
  const endpoint = { transport: 'tcp' } as unknown as ClientEndpoint;
  const a = new Allocation(
    7,
    endpoint,
    '2001:db8::1',
    5000,
    '1700000000:alice#room-9',
    'alice',
    1_600_000_000,
    600,
    'x',
  );
  a.relays = [{ advertisedAddress: '192.0.2.5', port: 50000 } as unknown as RelayHandle];
  const counters = {
    packetsToPeer: 1,
    bytesToPeer: 100,
    packetsToClient: 2,
    bytesToClient: 200,
    payloadRefused: 4,
    bandwidthDropped: 5,
  };
  t.same(usageRecord('stop', 'n1', a, counters, 3, 1_600_000_060_500, 'expired'), {
    kind: 'stop',
    node: 'n1',
    alloc: '7',
    seq: '3',
    user: '1700000000:alice#room-9',
    userid: 'alice',
    tag: 'room-9',
    transport: 'tcp',
    client: '[2001:db8::1]:5000',
    relay: '192.0.2.5:50000',
    start: '1600000000000',
    end: '1600000060500',
    reason: 'expired',
    packetsToPeer: '1',
    bytesToPeer: '100',
    packetsToClient: '2',
    bytesToClient: '200',
    droppedPayloadPolicy: '4',
    droppedBandwidth: '5',
  });
  t.match(usageRecord('interim', 'n1', a, counters, 1, 0), { kind: 'interim', end: '', tag: 'room-9' });
});

t.test('the bounded buffer', async (t) => {
  const b = new UsageBuffer(3);
  const r = (i: number) => ({ i: String(i) });
  const items = [r(1), r(2), r(3), r(4)];
  for (const x of items) b.push(x);
  t.equal(b.size, 3);
  t.equal(b.dropped, 1, 'the oldest went');
  const batch = b.peek(2);
  t.same(batch, [r(2), r(3)]);
  // Two more arrive while the batch is written: one of the batch is dropped meanwhile.
  b.push(r(5));
  b.push(r(6));
  t.equal(b.dropped, 3);
  b.consume(batch);
  t.same(b.peek(10), [r(4), r(5), r(6)], 'only what was written and still there is removed');
  b.consume(b.peek(10));
  t.equal(b.size, 0);
  const big = new UsageBuffer(5000);
  for (let i = 0; i < 20000; i++) big.push(r(i));
  t.equal(big.size, 5000);
  t.same(big.peek(1), [r(15000)], 'compaction keeps order');
});
