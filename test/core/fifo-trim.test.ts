/** fifo-trim.ts: bounded insertion-ordered Maps lose their oldest eighth at once, never a newer entry. */
import t from 'tap';
import { trimOldest } from '../../src/core/fifo-trim.js';
import { ResponseCache } from '../../src/core/turn/response-cache.js';

t.test('nothing goes while the Map is within its bound', async (t) => {
  const m = new Map([...Array(8).keys()].map((k) => [k, k]));
  trimOldest(m, 8);
  t.equal(m.size, 8);
});

t.test('past the bound the oldest eighth goes, newest kept, insertion order kept', async (t) => {
  const m = new Map<number, number>();
  for (let i = 0; i < 1024; i++) m.set(i, i);
  m.delete(5); // a hole among the oldest
  m.set(3, 33); // re-set: keeps its place (Map semantics)
  m.set(2000, 0);
  trimOldest(m, 1024);
  t.equal(m.size, 1024, 'at the bound: nothing goes');
  m.set(2001, 0);
  trimOldest(m, 1024);
  t.equal(m.size, 896, '1025 → 1024 − 1024/8');
  t.same([...m.keys()].slice(0, 2), [130, 131], 'the 129 oldest went (the hole not counted)');
  t.ok(m.has(2000) && m.has(1023), 'the newest stay');
  const tiny = new Map([
    [1, 1],
    [2, 2],
    [3, 3],
  ]);
  trimOldest(tiny, 2);
  t.same([...tiny.keys()], [3], 'a bound below 8 still frees a slot');
});

t.test('the response cache holds at most its capacity, the latest answers kept', async (t) => {
  const cache = new ResponseCache(64, 40);
  const response = Buffer.from('r');
  for (let i = 0; i < 1000; i++) cache.set(`k${i}`, response, 10);
  t.ok(cache.size <= 64 && cache.size >= 56, `size ${cache.size}`);
  t.equal(cache.get('k999', 10), response);
  t.equal(cache.get('k0', 10), undefined);
  t.equal(cache.get('k999', 50), undefined, 'expired after its 40 s');
});
