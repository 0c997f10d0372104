/**
 * RFC 8016 mobility in the sans-I/O core: tickets (mint, open, forged, other credentials, other
 * process, expired, replayed after a move), the Allocate that asks for mobility, and the Refresh
 * that moves an allocation to a new 5-tuple (the table's key, the data plane's lookups, the old
 * 5-tuple served no more, permissions and channels kept), with mobility on, off and reloaded.
 */
import t from 'tap';
import { AttrType, Method } from '../../../src/core/constants.js';
import { readBytes, readUint32 } from '../../../src/core/stun/attrs.js';
import { Allocation } from '../../../src/core/turn/allocation.js';
import { newGeneration, TICKET_LENGTH, TicketBook } from '../../../src/core/turn/mobility.js';
import {
  ALICE,
  FakeEndpoint,
  failure,
  Harness,
  MALLORY,
  type Reply,
  requestedTransport,
  success,
  summarize,
  type TurnClient,
} from '../../fixtures/helpers/turn-core-harness.js';

const WIFI = '192.0.2.50';
const LTE = '203.0.113.77';
const PEER = '198.51.100.9';

/** An allocation as the core builds it, without the service (for the ticket book alone). */
function allocation(id: number, username = 'alice', expiresInSec = 600): Allocation {
  const a = new Allocation(id, new FakeEndpoint(), WIFI, 40000, username, username, 1000, expiresInSec, 'x');
  a.pending = false;
  a.mobilityGeneration = newGeneration();
  return a;
}

/** The MOBILITY-TICKET of an answer (a copy), or undefined. */
function ticketOf(reply: Reply | null): Buffer | undefined {
  const v = reply === null ? undefined : readBytes(reply.view, AttrType.MobilityTicket);
  return v === undefined ? undefined : Buffer.from(v);
}

const mobile = requestedTransport((w) => w.addBytes(AttrType.MobilityTicket, Buffer.alloc(0)));
const withTicket = (ticket: Buffer) => (w: { addBytes(type: number, v: Uint8Array): unknown }) =>
  w.addBytes(AttrType.MobilityTicket, ticket);

/** A mobile allocation of ALICE at WIFI:40000 with a permission and channel 0x4000 to PEER:7000. */
function mobileSession(h: Harness): { c: TurnClient; a: Allocation; ticket: Buffer } {
  const c = h.client(ALICE, WIFI, 40000);
  const reply = c.allocate(mobile);
  const ticket = ticketOf(reply);
  if (ticket === undefined) throw new Error('no ticket in the Allocate success');
  c.channelBind(0x4000, PEER, 7000);
  return { c, a: c.allocation()!, ticket };
}

t.test('ticket book: mint and check; forged, other user, other key, bad length', async (t) => {
  const book = new TicketBook(Buffer.alloc(32, 7));
  const a = allocation(42);
  book.add(a);
  const ticket = book.mint(a);
  t.equal(ticket.length, TICKET_LENGTH);
  t.equal(book.check(ticket, 'alice', 1000), a, 'the ticket finds its allocation');
  t.same(book.open(ticket, 'alice'), {
    allocationId: 42,
    generation: a.mobilityGeneration,
    expiresAtSec: 1600,
  });
  for (let i = 0; i < ticket.length; i++) {
    const forged = Buffer.from(ticket);
    forged[i]! ^= 0x01;
    t.equal(book.check(forged, 'alice', 1000), 'invalid', `byte ${i} flipped`);
  }
  t.equal(book.check(ticket, 'mallory', 1000), 'invalid', 'for other credentials');
  t.equal(new TicketBook(Buffer.alloc(32, 8)).check(ticket, 'alice', 1000), 'invalid', 'another process');
  t.equal(book.check(ticket.subarray(0, 31), 'alice', 1000), 'invalid', 'short');
  t.equal(book.check(Buffer.concat([ticket, Buffer.alloc(1)]), 'alice', 1000), 'invalid', 'long');
  t.equal(book.check(Buffer.alloc(0), 'alice', 1000), 'invalid', 'empty');
  t.equal(book.check(ticket, 'alice', 1600), 'expired', 'at its expiry');
  // Another allocation's ticket with this one's id forged in: the MAC breaks.
  const other = allocation(43);
  book.add(other);
  const raw = Buffer.from(book.mint(other).toString('latin1'), 'base64url');
  raw.writeUInt32BE(42, 0);
  t.equal(book.check(Buffer.from(raw.toString('base64url')), 'alice', 1000), 'invalid', 'id swapped');
  t.match(ticket.toString('latin1'), /^[A-Za-z0-9_-]{32}$/, 'text: base64url, no NUL byte');
  a.mobilityGeneration = newGeneration(a.mobilityGeneration);
  t.equal(book.check(ticket, 'alice', 1000), 'stale', 'the allocation moved since');
  t.equal(book.check(book.mint(a), 'alice', 1000), a, 'a ticket of the new generation is good');
  book.remove(a);
  t.equal(book.check(book.mint(a), 'alice', 1000), 'stale', 'the allocation is gone');
  t.equal(book.size, 1);
  t.throws(() => new TicketBook(Buffer.alloc(16)), RangeError, 'a short key is refused');
  const random = [new TicketBook().mint(other), new TicketBook().mint(other)];
  t.not(random[0]!.toString('hex'), random[1]!.toString('hex'), 'each process has its own key');
});

t.test('mobility off (the default): an Allocate asking for it gets 405 and creates nothing', async (t) => {
  const h = new Harness();
  const c = h.client(ALICE, WIFI, 40000);
  t.same(summarize(c.allocate(mobile), ALICE), failure(Method.Allocate, 405));
  t.equal(h.service.table.size, 0);
  t.equal(h.stats.mobilityRefused.get('disabled'), 1);
  const plain = c.allocate();
  t.same(summarize(plain, ALICE), success(Method.Allocate));
  t.equal(ticketOf(plain), undefined, 'no ticket without asking');
  t.equal(ticketOf(c.refresh()), undefined, 'none in the Refresh either');
  const lte = h.client(ALICE, LTE, 50000);
  t.same(
    summarize(lte.refresh(undefined, withTicket(Buffer.alloc(TICKET_LENGTH, 1))), ALICE),
    failure(Method.Refresh, 405),
    'a Refresh with a ticket from a new 5-tuple: 405',
  );
  t.equal(h.stats.mobilityRefused.get('disabled'), 2);
  t.equal(h.stats.mobilityMoves, 0);
});

t.test(
  'mobility on: tickets only for allocations that ask; a non-empty ticket in Allocate is 400',
  async (t) => {
    const h = new Harness({ turn: { mobility: true } });
    const plain = h.client(ALICE, WIFI, 40001);
    t.equal(ticketOf(plain.allocate()), undefined, 'not asked: not mobile');
    t.equal(ticketOf(plain.refresh()), undefined);
    const bad = h.client(ALICE, WIFI, 40002);
    t.same(
      summarize(bad.allocate(requestedTransport(withTicket(Buffer.from('x')))), ALICE),
      failure(Method.Allocate, 400),
    );
    t.equal(bad.allocation(), undefined);
    const { c, a, ticket } = mobileSession(h);
    t.equal(ticket.length, TICKET_LENGTH);
    t.not(a.mobilityGeneration, 0);
    t.ok(ticketOf(c.refresh())?.equals(ticket), 'a Refresh at once: the same ticket (same expiry)');
    h.advance(5);
    const again = ticketOf(c.refresh());
    t.ok(again !== undefined && !again.equals(ticket), 'later: a ticket with the new expiry');
    t.equal(ticketOf(c.refresh(0)), undefined, 'none when the allocation is deleted');
  },
);

t.test('a Refresh with the ticket from a new 5-tuple moves the allocation; the old one stops', async (t) => {
  const h = new Harness({ turn: { mobility: true } });
  const moved: string[] = [];
  h.bus.subscribe({
    allocationMoved: (m, from) =>
      moved.push(`${from.address}:${from.port}>${m.clientAddress}:${m.clientPort}`),
  });
  const { c, a, ticket } = mobileSession(h);
  const relay = c.relay();
  c.channelData(0x4000, Buffer.from('before'));
  const lte = h.client(ALICE, LTE, 50000);
  const reply = lte.refresh(900, withTicket(ticket));
  t.same(summarize(reply, ALICE), success(Method.Refresh), 'moved');
  t.equal(readUint32(reply!.view, AttrType.Lifetime), 900);
  const next = ticketOf(reply);
  t.ok(next !== undefined && !next.equals(ticket), 'with a new ticket');
  t.equal(lte.allocation(), a, 'the same allocation, on the new 5-tuple');
  t.equal(c.allocation(), undefined, 'nothing on the old one');
  t.equal(h.service.table.size, 1);
  t.same([a.clientAddress, a.clientPort], [LTE, 50000]);
  t.equal(a.expiresAtSec, h.nowSec + 900);
  t.same(moved, [`${WIFI}:40000>${LTE}:50000`]);
  t.equal(h.stats.mobilityMoves, 1);
  // Permissions and channels kept: ChannelData from the new 5-tuple is relayed, from the old one not.
  lte.channelData(0x4000, Buffer.from('after'));
  const dropped = h.stats.droppedNoAllocation;
  c.channelData(0x4000, Buffer.from('old'));
  t.equal(h.stats.droppedNoAllocation, dropped + 1, 'the old 5-tuple relays nothing');
  t.same(
    relay.sent.map((d) => d.data.toString()),
    ['before', 'after'],
  );
  // Peer data goes to the new client address.
  h.fromPeer(relay, Buffer.from('to-you'), PEER, 7000);
  const last = h.udp.sent.at(-1)!;
  t.same([last.address, last.port], [LTE, 50000]);
  t.equal(last.buf.subarray(4).toString(), 'to-you');
  t.equal(last.buf.readUInt16BE(0), 0x4000, 'as ChannelData on the bound channel');
  // Requests from the old 5-tuple: 437.
  t.same(summarize(c.refresh(), ALICE), failure(Method.Refresh, 437));
  t.same(summarize(c.createPermission([PEER]), ALICE), failure(Method.CreatePermission, 437));
  // The new 5-tuple can do everything.
  t.same(summarize(lte.createPermission(['198.51.100.10']), ALICE), success(Method.CreatePermission));
  t.ok(h.service.table.hasClientAddress(LTE) && !h.service.table.hasClientAddress(WIFI));
});

t.test('replayed, forged, expired and foreign tickets get 405 and change nothing', async (t) => {
  const h = new Harness({ turn: { mobility: true } });
  const { a, ticket } = mobileSession(h);
  const lte = h.client(ALICE, LTE, 50000);
  const reply = lte.refresh(undefined, withTicket(ticket));
  t.same(summarize(reply, ALICE), success(Method.Refresh));
  const current = ticketOf(reply)!;
  const state = () => [a.clientAddress, a.clientPort, a.expiresAtSec, h.service.table.size];
  let before = state();
  const attempt = (who: TurnClient, tk: Buffer, reason: string, creds = ALICE) => {
    const refusedBefore = h.stats.mobilityRefused.get(reason) ?? 0;
    t.same(
      summarize(who.refresh(undefined, withTicket(tk)), creds),
      failure(Method.Refresh, 405),
      `${reason}: 405`,
    );
    t.equal(h.stats.mobilityRefused.get(reason), refusedBefore + 1, `counted as ${reason}`);
    t.same(state(), before, 'nothing changed');
  };
  // Replays of the ticket just used: from the old address (an attacker who saw it) and a third one.
  attempt(h.client(ALICE, WIFI, 40000), ticket, 'stale');
  attempt(h.client(ALICE, '192.0.2.99', 1234), ticket, 'stale');
  // Forged: the current ticket with one bit flipped, or random bytes.
  const forged = Buffer.from(current);
  forged[20]! ^= 0x80;
  attempt(h.client(ALICE, '192.0.2.99', 1235), forged, 'invalid');
  attempt(h.client(ALICE, '192.0.2.99', 1236), Buffer.alloc(TICKET_LENGTH, 0xab), 'invalid');
  // The current ticket under other (valid) credentials.
  attempt(h.client(MALLORY, '192.0.2.99', 1237), current, 'invalid', MALLORY);
  // From another transport: a TCP connection.
  attempt(h.client(ALICE, '192.0.2.99', 1238, new FakeEndpoint('tcp')), current, 'transport');
  // An empty ticket is malformed: 400.
  t.same(
    summarize(h.client(ALICE, '192.0.2.99', 1239).refresh(undefined, withTicket(Buffer.alloc(0))), ALICE),
    failure(Method.Refresh, 400),
  );
  t.equal(h.stats.mobilityMoves, 1);
  // Expired: the ticket of the move carries the allocation's expiry then (600 s); a later Refresh
  // extends the allocation but not that ticket.
  h.advance(500);
  const later = ticketOf(lte.refresh(3600))!;
  before = state();
  h.advance(200);
  attempt(h.client(ALICE, '192.0.2.99', 1240), current, 'expired');
  t.same(
    summarize(h.client(ALICE, '192.0.2.99', 1241).refresh(undefined, withTicket(later)), ALICE),
    success(Method.Refresh),
    'the latest ticket still moves it',
  );
  t.equal(a.clientPort, 1241);
});

t.test('the moving Refresh retransmitted gets the same answer; LIFETIME 0 moves and deletes', async (t) => {
  const h = new Harness({ turn: { mobility: true } });
  const { a, ticket } = mobileSession(h);
  const lte = h.client(ALICE, LTE, 50000);
  lte.login();
  const request = lte.build(Method.Refresh, withTicket(ticket));
  const first = lte.exchange(request);
  t.same(summarize(first, ALICE), success(Method.Refresh));
  const second = lte.exchange(request);
  t.ok(second?.buf.equals(first!.buf), 'from the cache');
  t.equal(h.stats.mobilityMoves, 1, 'moved once');
  const bye = h.client(ALICE, '192.0.2.98', 999).refresh(0, withTicket(ticketOf(first)!));
  t.same(summarize(bye, ALICE), success(Method.Refresh));
  t.equal(a.deleted, true);
  t.equal(h.service.table.size, 0);
  t.equal(h.service.tickets.size, 0, 'the ticket book forgets it');
  t.same(
    summarize(h.client(ALICE, '192.0.2.97', 998).refresh(undefined, withTicket(ticketOf(first)!)), ALICE),
    failure(Method.Refresh, 405),
    'no allocation behind the ticket any more',
  );
});

t.test('a ticket sent from the allocation own 5-tuple is a plain Refresh', async (t) => {
  const h = new Harness({ turn: { mobility: true } });
  const { c, a } = mobileSession(h);
  const reply = c.refresh(undefined, withTicket(Buffer.from('not a ticket at all')));
  t.same(summarize(reply, ALICE), success(Method.Refresh));
  t.ok(ticketOf(reply), 'with a fresh ticket');
  t.equal(c.allocation(), a);
  t.equal(h.stats.mobilityMoves, 0);
});

t.test('a move keeps REQUESTED-ADDRESS-FAMILY checks: 443 changes nothing', async (t) => {
  const h = new Harness({ turn: { mobility: true } });
  const { a, ticket } = mobileSession(h);
  const reply = h.client(ALICE, LTE, 50000).refresh(undefined, (w) => {
    w.addBytes(AttrType.MobilityTicket, ticket);
    w.addLeadingByte(AttrType.RequestedAddressFamily, 0x02);
  });
  t.same(summarize(reply, ALICE), failure(Method.Refresh, 443));
  t.same([a.clientAddress, a.clientPort], [WIFI, 40000], 'not moved');
});

t.test('streams: a TCP allocation moves to a new connection, which the old one closing spares', async (t) => {
  const h = new Harness({ turn: { mobility: true } });
  const oldConn = new FakeEndpoint('tcp');
  const newConn = new FakeEndpoint('tcp');
  const c = h.client(ALICE, WIFI, 40000, oldConn);
  const ticket = ticketOf(c.allocate(mobile))!;
  const a = c.allocation()!;
  const n = h.client(ALICE, LTE, 50000, newConn);
  t.same(summarize(n.refresh(undefined, withTicket(ticket)), ALICE), success(Method.Refresh));
  h.service.endpointClosed(oldConn);
  t.equal(a.deleted, false, 'the old connection closing does not delete it');
  h.service.endpointClosed(newConn);
  t.equal(a.deleted, true, 'the new one does');
});

t.test(
  'reload: mobility switched off stops tickets and moves; back on, the allocation moves again',
  async (t) => {
    const h = new Harness({ turn: { mobility: true } });
    const { c, a } = mobileSession(h);
    const ticket = ticketOf(c.refresh())!;
    h.service.reconfigure({ ...h.options, mobility: false }, h.auth, h.policy);
    t.equal(ticketOf(c.refresh()), undefined, 'no ticket while off');
    t.same(
      summarize(h.client(ALICE, LTE, 50000).refresh(undefined, withTicket(ticket)), ALICE),
      failure(Method.Refresh, 405),
    );
    t.equal(c.allocation(), a);
    h.service.reconfigure({ ...h.options, mobility: true }, h.auth, h.policy);
    t.same(
      summarize(h.client(ALICE, LTE, 50001).refresh(undefined, withTicket(ticket)), ALICE),
      success(Method.Refresh),
      'the allocation is still mobile',
    );
  },
);

t.test('random and mutated tickets: 400 or 405, never a move, never a throw', async (t) => {
  const h = new Harness({ turn: { mobility: true } });
  const { a, ticket } = mobileSession(h);
  let seed = 0x9e3779b9;
  const rnd = (n: number): number => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) % n;
  };
  const codes = new Map<number | undefined, number>();
  for (let i = 0; i < 400; i++) {
    let bad: Buffer;
    if (i % 2 === 0) bad = Buffer.from(Array.from({ length: rnd(70) }, () => rnd(256)));
    else {
      bad = Buffer.from(ticket);
      for (let k = 1 + rnd(3); k > 0; k--) bad[rnd(bad.length)] = rnd(256);
      if (bad.equals(ticket)) bad[0] = bad[0] === 0x41 ? 0x42 : 0x41;
    }
    const reply = h.client(ALICE, '192.0.2.200', 1000 + i).refresh(undefined, withTicket(bad));
    const s = summarize(reply, ALICE);
    codes.set(s?.code, (codes.get(s?.code) ?? 0) + 1);
  }
  t.same(
    [...codes.keys()].filter((c) => c !== 400 && c !== 405),
    [],
    `only 400 (empty) and 405: ${JSON.stringify([...codes])}`,
  );
  t.same([a.clientAddress, a.clientPort], [WIFI, 40000], 'never moved');
  t.equal(h.stats.mobilityMoves, 0);
});
