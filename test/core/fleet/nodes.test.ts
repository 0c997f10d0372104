import t from 'tap';
import {
  chooseAlternate,
  idleReport,
  isOverloaded,
  loadOf,
  type NodeReport,
  parseNodeReport,
} from '../../../src/core/fleet/nodes.js';

const node = (id: string, o: Partial<NodeReport> = {}): NodeReport => ({
  ...idleReport({ id, address: '192.0.2.1', port: 3478 }, 1000),
  ...o,
});

t.test('load against the thresholds', async (t) => {
  t.equal(loadOf(50, 0, { maxAllocations: 100, maxCpu: 0 }), 0.5);
  t.equal(loadOf(50, 90, { maxAllocations: 100, maxCpu: 60 }), 1.5, 'the highest ratio counts');
  t.ok(loadOf(5, 99, { maxAllocations: 0, maxCpu: 0 }) < 1e-6, 'no threshold: never over');
  t.ok(
    loadOf(6, 0, { maxAllocations: 0, maxCpu: 0 }) > loadOf(5, 0, { maxAllocations: 0, maxCpu: 0 }),
    'but still ordered by allocations',
  );
  t.equal(isOverloaded(0.99, false), false);
  t.equal(isOverloaded(1, false), true, 'at the threshold is over');
  t.equal(isOverloaded(0, true), true, 'draining is over');
});

t.test('the least-loaded healthy other node', async (t) => {
  const nodes = [
    node('self', { load: 0 }),
    node('busy', { load: 1.2 }),
    node('draining', { draining: true }),
    node('stale', { atMs: 0 }),
    node('b', { load: 0.4, allocations: 9 }),
    node('c', { load: 0.2, allocations: 30 }),
    node('d', { load: 0.2, allocations: 20 }),
  ];
  t.equal(chooseAlternate(nodes, 'self', 1000, 500)?.id, 'd', 'lowest load, then fewest allocations');
  t.equal(
    chooseAlternate([node('x', { load: 0.2 }), node('a', { load: 0.2 })], 'self', 1000, 500)?.id,
    'a',
    'then id',
  );
  t.equal(chooseAlternate(nodes.slice(0, 4), 'self', 1000, 500), undefined, 'none healthy: none');
  t.equal(chooseAlternate([node('stale', { atMs: 0 })], 'self', 1000, 999)?.id, undefined);
  t.equal(
    chooseAlternate([node('fresh', { atMs: 1 })], 'self', 1000, 999)?.id,
    'fresh',
    'age within the bound',
  );
});

t.test('reports read back never throw', async (t) => {
  const r = node('n1', { allocations: 3, draining: true, load: 0.3 });
  t.same(parseNodeReport(JSON.stringify(r)), r);
  for (const bad of [
    null,
    undefined,
    '',
    'nope',
    '1',
    '{}',
    '{"id":"x","address":"a"}',
    '{"id":1,"address":"a","port":1}',
  ])
    t.equal(parseNodeReport(bad), undefined, String(bad));
  t.match(parseNodeReport('{"id":"x","address":"a","port":1,"cpu":"hot"}'), { cpu: 0, draining: false });
});
